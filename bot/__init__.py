"""The composition root: settings, factories, the App and its runners (polling,
webhook), middlewares, the outbox sender, the scheduler. It alone knows every part
and wires them; nothing imports it back (but sandbox/, which runs the same App)."""
