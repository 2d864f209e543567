"""The fleet report: ``fleetforge report INVENTORY -o fleet.html``, one static HTML page of every
host (hardware, plan and sources, last deploy, verify state, warnings, drift over time), the
rollouts' timelines, the run history and the measured tuning, from the run store
(``fleetforge.runs``). ``html`` makes the page, ``cards`` a host's card, ``svg`` the charts,
``fleet`` derives what each host shows from the records, ``cli`` is the subcommand."""
