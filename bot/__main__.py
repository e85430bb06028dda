"""`python -m bot`: the bot with BOT_TOKEN set; without one, the offline sandbox
(the same bot against a local Bot API server, simulated plugs and a web page)."""

from sandbox.env import has_bot_token, setting

# a webhook deployment without a token is a configuration error, not a demo
if has_bot_token() or setting("WEBHOOK_URL"):
    from bot.app import main
else:
    from sandbox.runner import main

main()
