"""What people see: texts in their language, keyboards, button payloads, views of
the domain's plain values, refusals in words, and the outbox's messages rendered."""
