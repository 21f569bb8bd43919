"""Source classes of the venues added after the first three (those are in bot/sources.py): each
module wraps one pure parser of bot/venues/ with its streams and REST polls."""
