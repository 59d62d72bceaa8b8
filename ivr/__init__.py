"""The IVR server: call workers running flows, configuration, the call store and the CLI."""
