"""Scenarios (SPEC §4-§5): triggers, audiences, steps, personalisation fields and their measured effect."""

from kizuna.scenarios._model import Scenario, ScenarioError, load_scenario, load_scenarios
from kizuna.scenarios._render import RenderError
from kizuna.scenarios._results import RESULT_COLUMNS, scenario_results
from kizuna.scenarios._run import OUTBOX, SCENARIO_FOLDER, RunReport, group_of, run_scenarios, scenario_fields

__all__ = ["OUTBOX", "RESULT_COLUMNS", "SCENARIO_FOLDER", "RenderError", "RunReport", "Scenario", "ScenarioError",
           "group_of", "load_scenario", "load_scenarios", "run_scenarios", "scenario_fields", "scenario_results"]
