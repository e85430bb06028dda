"""`python -m bot`: the bot with BOT_TOKEN set; without one, the offline sandbox
(the same bot against a local Bot API server, simulated plugs and a web page)."""

from sandbox.env import has_bot_token

if has_bot_token():
    from bot.app import main
else:
    from sandbox.runner import main

main()
