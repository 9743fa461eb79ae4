"""The smoke study's report.html, tidied as ``make demo`` does, in a real browser (headless Chromium driven
by Playwright): the first screen points to the findings and draws each rule once, every result category opens and lists its results, the findings and
tables pages render inline with their sections, and a plot renders as an image. Needs Chromium
(`apt-get install chromium`) and Playwright (`pip install -e '.[browser]'`); skipped, saying which is
missing, where either is not installed."""
import os
import shutil
import subprocess
import sys

import pytest

from workflow_runs import snakemake

pytestmark = pytest.mark.workflow
CHROMIUM = os.environ.get("ROBUSTXAI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
#: the report's result categories (the ``category`` of every ``report()`` output of the rules)
CATEGORIES = ("0. Findings", "1. Models", "2. Explainability", "3. Correlations", "4. Rankings and comparisons",
              "5. Maps", "6. Plots", "7. Learned explainer")


@pytest.fixture(scope="module")
def report_page(smoke_run):
    """A Playwright page (1280 x 800) on the smoke study's report.html, and the script errors it raised."""
    playwright = pytest.importorskip("playwright.sync_api", reason="needs Playwright: pip install -e '.[browser]'")
    if CHROMIUM is None:
        pytest.skip("needs Chromium: apt-get install chromium (or ROBUSTXAI_CHROMIUM=/path/to/chrome)")
    report = smoke_run / "results" / "report.html"
    snakemake(smoke_run, "--report", str(report))
    subprocess.run([sys.executable, "-m", "robustxai.cli", "tidy-report", str(report)], check=True)  # as make demo
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(report.as_uri())
        page.wait_for_load_state("networkidle")
        yield page, errors
        browser.close()


def open_category(page, name: str):
    """Show one result category's list, from the report's first screen."""
    page.reload()
    page.wait_for_load_state("networkidle")
    page.get_by_text(name, exact=True).click()


def view_result(page, path: str):
    """Click the view (eye) button of the result row whose file is ``path``."""
    page.locator("tr", has_text=path).first.locator("a[iconname='eye']").click()


def test_the_first_screen_lists_every_category_points_to_the_findings_and_draws_each_rule_once(report_page):
    page, errors = report_page
    text = page.inner_text("body")
    for category in CATEGORIES:
        assert category in text, category
    assert 'Start with "0. Findings"' in text and "Dataset: builtin" in text
    rules = page.evaluate("rulegraph_spec.data[0].values.map(node => node.rule)")
    assert len(rules) == len(set(rules)) and {"train_model", "attribute", "roar", "findings"} <= set(rules)
    assert errors == []


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_opens_with_its_results(report_page, category):
    page, errors = report_page
    open_category(page, category)
    rows = page.locator("tr:has(a[iconname])")  # a result: its file or labels, with view / download buttons
    assert rows.count() > 0 and errors == []


def test_the_findings_and_tables_pages_render_inline_with_their_sections(report_page):
    page, errors = report_page
    for path, headings in (("results/report/findings.html", ["The paper's findings, checked against this run",
                                                               "1. Robust CNNs are more explainable"]),
                           ("results/report/tables.html", ["Models", "ROAR (remove and retrain)",
                                                           "ROAR mask-only controls"])):
        open_category(page, "0. Findings")
        view_result(page, path)
        frame = page.frame_locator("iframe")
        frame.locator("h2").first.wait_for()
        shown = frame.locator("h1, h2").all_inner_texts()
        for heading in headings:
            assert any(text.startswith(heading) for text in shown), (heading, shown)
        assert frame.locator("table").count() >= 2  # findings: both studies' verdicts; tables: every table
    assert errors == []


def test_a_plot_renders_as_an_image(report_page):
    page, errors = report_page
    open_category(page, "7. Learned explainer")
    view_result(page, "results/plots/roar.png")
    image = page.locator("img[src^='data:image/png']").first
    image.wait_for()
    assert image.evaluate("img => img.naturalWidth") > 300 and errors == []
