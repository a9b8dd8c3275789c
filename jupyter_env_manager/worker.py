"""``python -m jupyter_env_manager.worker <build dir>``: the build worker's public entry point
(see :mod:`.core.worker`)."""

from .core.worker import main

if __name__ == "__main__":
    main()
