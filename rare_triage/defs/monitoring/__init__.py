"""Monitoring: served predictions read back from the bucket, drift against the training reference, realized
performance, and the sensors that close the loop by retraining."""
