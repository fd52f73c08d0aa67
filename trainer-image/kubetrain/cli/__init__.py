"""The `kubetrain` command line."""
