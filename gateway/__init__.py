"""mailslot's gateway: the product (`core/`), its HTTP adapter (`http/`), the CLI and the web SDK."""

from .config import Config, load_config
from .http.app import create_app

__all__ = ["Config", "create_app", "load_config"]
