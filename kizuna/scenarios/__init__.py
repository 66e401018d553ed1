"""Scenarios (docs/measures.md §4–§5): triggers, audiences, steps, personalisation fields and their measured effect.

A run is a pipeline (`run_scenarios`): evaluate occasions → enrol in the ledger → pick what is
due → dispatch, over a `RunContext` the workspace builds.
"""

from kizuna.scenarios._calls import CALL_RESULT_COLUMNS, last_calls, script_results
from kizuna.scenarios._context import OUTBOX, RUN_LOCK, SCENARIO_FOLDER, RunContext, RunSettings
from kizuna.scenarios._dispatch import RunReport, StepTally
from kizuna.scenarios._model import Scenario, ScenarioError, load_scenario, load_scenarios
from kizuna.scenarios._preview import preview_message
from kizuna.scenarios._render import RenderError, render, text_to_html
from kizuna.scenarios._results import CALL_GROUPS, RESULT_COLUMNS, call_results, holdout_effect, scenario_results
from kizuna.scenarios._run import group_of, run_scenarios, scenario_fields

__all__ = ["CALL_GROUPS", "CALL_RESULT_COLUMNS", "call_results", "holdout_effect",
           "OUTBOX", "RESULT_COLUMNS", "RUN_LOCK", "SCENARIO_FOLDER", "RenderError",
           "RunContext", "RunReport", "RunSettings", "Scenario", "ScenarioError", "StepTally", "group_of", "last_calls",
           "load_scenario", "load_scenarios", "preview_message", "render", "run_scenarios", "scenario_fields",
           "scenario_results", "script_results", "text_to_html"]
