"""mailslot's HTTP gateway: the aiohttp application, its CLI and the web SDK it serves."""

from .app import create_app
from .config import Config, load_config

__all__ = ["Config", "create_app", "load_config"]
