"""Run records: every deploy, verify, rollout, tune, probe and plan, kept in a local SQLite
store (``store``), shaped by ``models``, drawn by ``fleetforge report``. Made by ``record`` (the
recorder the commands use), ``commands`` (probe/plan/verify hosts), ``rollout_record`` (a
rollout's waves) and ``pyinfra_hook`` (pyinfra's own runs of the deploy files)."""
