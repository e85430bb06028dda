"""The offline sandbox: the real bot against a local Bot API server, an MQTT broker and
simulated smart plugs, with a web page that plays the user, the merchant and the admins."""
