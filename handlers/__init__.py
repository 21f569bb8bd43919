"""Chat platform adapters (Telegram, Discord): they parse input, call the one command core in
`bot/commands.py` and render its replies. Nothing here decides or computes."""
