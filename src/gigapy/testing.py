"""pytest plugin: GigaChat emulator fixtures for your own tests."""
