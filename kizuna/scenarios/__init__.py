"""Scenarios (docs/measures.md §4–§5): triggers, audiences, steps, personalisation fields and their measured effect.

A run is a pipeline (`run_scenarios`): evaluate occasions → enrol in the ledger → pick what is
due → dispatch, over a `RunContext` the workspace builds.
"""

from typing import TYPE_CHECKING

from kizuna._lazy import lazy_getattr
from kizuna.scenarios._costs import (
    OVER_BUDGET,
    Budgets,
    CostSettings,
    budget_left,
    cost_lines,
    incremental_profit,
    month_spend,
    unit_cost,
)

if TYPE_CHECKING:
    from kizuna.scenarios._calls import CALL_RESULT_COLUMNS, last_calls, script_results
    from kizuna.scenarios._campaigns import (
        CAMPAIGN_FOLDER,
        CAMPAIGN_PREFIX,
        Campaign,
        CampaignPlan,
        Variant,
        campaign_plan,
        campaign_results,
        campaign_state,
        campaign_text,
        find_campaign,
        load_campaign,
        load_campaigns,
        preview_campaign,
        send_campaign,
        with_campaigns,
        write_campaign,
    )
    from kizuna.scenarios._context import OUTBOX, RUN_LOCK, SCENARIO_FOLDER, RunContext, RunSettings
    from kizuna.scenarios._dispatch import RunReport, StepTally
    from kizuna.scenarios._model import Scenario, ScenarioError, load_scenario, load_scenarios
    from kizuna.scenarios._preview import preview_message
    from kizuna.scenarios._render import RenderError, render, text_to_html
    from kizuna.scenarios._results import CALL_GROUPS, RESULT_COLUMNS, call_results, holdout_effect, scenario_results
    from kizuna.scenarios._run import group_of, run_scenarios, scenario_fields
    from kizuna.scenarios._segments_saved import (
        SEGMENT_FIELDS,
        SEGMENT_FOLDER,
        SavedSegment,
        SegmentCount,
        condition_text,
        count_segment,
        delete_segment,
        find_segment,
        load_segment,
        load_segments,
        parse_conditions,
        save_segment,
        segment_members,
    )
    from kizuna.scenarios._switches import (
        ENTERING_TRIGGERS,
        SWITCH_STATES,
        ScenarioState,
        scenario_states,
        switch_scenario,
    )
    from kizuna.scenarios._test_send import TESTABLE_CHANNELS, TestSend, sample_customer, send_test
    from kizuna.scenarios._tracking import template_links, track_links, utm_parameters, with_utm
    from kizuna.scenarios._where import EXTRA_FIELDS, segment_population

__all__ = ["CALL_GROUPS", "CALL_RESULT_COLUMNS", "call_results", "holdout_effect",
           "OUTBOX", "RESULT_COLUMNS", "RUN_LOCK", "SCENARIO_FOLDER", "RenderError",
           "RunContext", "RunReport", "RunSettings", "Scenario", "ScenarioError", "StepTally", "group_of", "last_calls",
           "load_scenario", "load_scenarios", "preview_message", "render", "run_scenarios", "scenario_fields",
           "scenario_results", "script_results", "text_to_html"]
# clicks and costs (docs/measures.md#clicks, #costs)
__all__ += ["OVER_BUDGET", "Budgets", "CostSettings", "budget_left", "cost_lines", "incremental_profit", "month_spend",
            "template_links", "track_links", "unit_cost", "utm_parameters", "with_utm"]
# switches and test sends (docs/measures.md#switches)
__all__ += ["ENTERING_TRIGGERS", "SWITCH_STATES", "TESTABLE_CHANNELS", "ScenarioState", "TestSend", "sample_customer",
            "scenario_states", "send_test", "switch_scenario"]
# saved segments and one-off campaigns (docs/measures.md#saved-segments, #campaigns)
__all__ += ["CAMPAIGN_FOLDER", "CAMPAIGN_PREFIX", "Campaign", "CampaignPlan", "Variant", "campaign_plan",
            "campaign_results", "campaign_state", "campaign_text", "find_campaign", "load_campaign", "load_campaigns",
            "preview_campaign", "send_campaign", "with_campaigns", "write_campaign",
            "EXTRA_FIELDS", "SEGMENT_FIELDS", "SEGMENT_FOLDER", "SavedSegment", "SegmentCount", "condition_text",
            "count_segment", "delete_segment", "find_segment", "load_segment", "load_segments", "parse_conditions",
            "save_segment", "segment_members", "segment_population"]

# Runs, templates and channels load on first use (PEP 562): the workspace composes CostSettings into its
# settings, and commands that send nothing (analyze, kpi, import …) do not pay for YAML, Jinja2, the
# prediction models SciPy loads, or the LINE client.
_LAZY = {name: module for module, names in {
    "_calls": ("CALL_RESULT_COLUMNS", "last_calls", "script_results"),
    "_context": ("OUTBOX", "RUN_LOCK", "SCENARIO_FOLDER", "RunContext", "RunSettings"),
    "_dispatch": ("RunReport", "StepTally"),
    "_model": ("Scenario", "ScenarioError", "load_scenario", "load_scenarios"),
    "_preview": ("preview_message",),
    "_render": ("RenderError", "render", "text_to_html"),
    "_results": ("CALL_GROUPS", "RESULT_COLUMNS", "call_results", "holdout_effect", "scenario_results"),
    "_run": ("group_of", "run_scenarios", "scenario_fields"),
    "_switches": ("ENTERING_TRIGGERS", "SWITCH_STATES", "ScenarioState", "scenario_states", "switch_scenario"),
    "_test_send": ("TESTABLE_CHANNELS", "TestSend", "sample_customer", "send_test"),
    "_tracking": ("template_links", "track_links", "utm_parameters", "with_utm"),
    "_campaigns": (
        "CAMPAIGN_FOLDER", "CAMPAIGN_PREFIX", "Campaign", "CampaignPlan", "Variant", "campaign_plan",
        "campaign_results", "campaign_state", "campaign_text", "find_campaign", "load_campaign", "load_campaigns",
        "preview_campaign", "send_campaign", "with_campaigns", "write_campaign"
    ),
    "_segments_saved": (
        "SEGMENT_FIELDS", "SEGMENT_FOLDER", "SavedSegment", "SegmentCount", "condition_text", "count_segment",
        "delete_segment", "find_segment", "load_segment", "load_segments", "parse_conditions", "save_segment",
        "segment_members"
    ),
    "_where": ("EXTRA_FIELDS", "segment_population"),
}.items() for name in names}


__getattr__ = lazy_getattr(__name__, _LAZY)
