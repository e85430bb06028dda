"""The domain: rules over models and ports. No aiogram and no MQTT imports here."""
