"""The scripted-call harness (``ivr-harness``): scenario files, harness calls on ``media``
that recognise prompts by audio fingerprint, results (JUnit, JSON) and load mode.
Reference: docs/harness.md."""
