"""One module per benchmark scenario; each exposes run(options) -> ScenarioReport."""
