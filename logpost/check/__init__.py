"""``logpost check``: an Axolotl config (or a plain HF/TRL data file) against a sample of its data.

A log shows the symptom (loss 0, grad_norm 0); the config plus a few rows of data show the cause:
a messages field that is not there, a role/content mapping that names the wrong keys, a role that
maps to nothing, a sample with no trainable turn. See docs/check.md.
"""

from logpost.check.core import CheckOptions, CheckReport, DatasetResult, check, check_config, check_data

__all__ = ["CheckOptions", "CheckReport", "DatasetResult", "check", "check_config", "check_data"]
