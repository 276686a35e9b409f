"""The campaign report task, as an operator so that it can carry the "Campaign report" link."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from faxflow.airflow.links import CampaignReportLink


class CampaignReportOperator(BaseOperator):
    """Write the campaign report and run summary from the variants' collect results.

    :param plan_info: the plan task's output (XComArg)
    :param collected: variant name → that variant's collect output (XComArgs; skipped variants give None)
    :param cluster: the campaign-level cluster settings (where ``faxflow report`` runs)
    """

    template_fields = ("plan_info", "collected")
    operator_extra_links = (CampaignReportLink(),)
    ui_color = "#e8f5d0"

    def __init__(self, *, plan_info: Any, collected: dict[str, Any], cluster: dict, **kwargs):
        super().__init__(**kwargs)
        self.plan_info = plan_info
        self.collected = collected
        self.cluster = cluster

    def execute(self, context) -> dict:
        from faxflow.airflow.tasks import campaign_report

        return campaign_report(self.plan_info, dict(self.collected or {}), self.cluster)
