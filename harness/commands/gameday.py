from harness.commands.run import add_gameday_arguments as add_arguments, run_gameday as run  # noqa: F401
