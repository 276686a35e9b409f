from pathlib import Path

from faxflow.docs import render_configuration_reference

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_up_to_date():
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render_configuration_reference(), "run: make docs"


def test_reference_documents_every_section():
    text = render_configuration_reference()
    for section in ("ClusterSettings", "PhysicsOverrides", "ProcessingOverrides", "TableSource", "NestSource",
                    "FiducialVolume", "PaxOptions"):
        assert f"## {section}" in text
    assert "`diffusion_constant_cm2_per_s`" in text and "`max_concurrent_jobs`" in text
