"""A run: one scenario against one target, split along its phases (harness/run/runner.py puts them in order).

Nothing is imported here, so a module that needs only the events (harness/run/onconsole.py) or a command
that has not started a run yet does not load the Kubernetes and AWS clients the phases use.
"""
