"""What the browser tests measure on every step and state: reflow (no page-level sideways
scroll, no table or box scrolling sideways, no text outside the viewport), no overlapping text
(the client rectangles of every visible text node, clipped by their scrolling or clipping
ancestors), truncated values that keep their full text in a `title`, and axe-core (bundled with
`axe-playwright-python`, injected by Playwright: no network) with no serious or critical
violation."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

#: Widths every state is measured at: the smallest phone, a common phone, a laptop.
WIDTHS = (320, 390, 1280)
HEIGHTS = {320: 640, 390: 844, 1280: 900}
FAILING_IMPACTS = frozenset({"serious", "critical"})

LAYOUT_SCRIPT = """
() => {
  const problems = [];
  const doc = document.documentElement;
  const describe = (el) => {
    let text = el.tagName.toLowerCase();
    if (el.id) text += "#" + el.id;
    if (el.classList.length) text += "." + Array.from(el.classList).join(".");
    return text;
  };
  if (doc.scrollWidth > doc.clientWidth + 1) {
    problems.push(`the page scrolls sideways: ${doc.scrollWidth}px in ${doc.clientWidth}px`);
  }
  for (const el of document.querySelectorAll("body *")) {
    if (!el.checkVisibility()) continue;
    const style = getComputedStyle(el);
    if ((style.overflowX === "auto" || style.overflowX === "scroll")
        && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`${describe(el)} scrolls sideways (${el.scrollWidth} > ${el.clientWidth})`);
    }
    if (style.textOverflow === "ellipsis" && el.clientWidth > 1
        && el.scrollWidth > el.clientWidth + 1 && !el.closest("[title]")) {
      problems.push(`${describe(el)} is cut with no title holding "${el.textContent.trim()}"`);
    }
  }
  const clipOf = (el) => {
    let box = {left: -1e9, top: -1e9, right: 1e9, bottom: 1e9};
    for (let a = el; a && a !== document.body; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (style.overflowX !== "visible" || style.overflowY !== "visible" || style.clip !== "auto") {
        const r = a.getBoundingClientRect();
        box = {left: Math.max(box.left, r.left), top: Math.max(box.top, r.top),
               right: Math.min(box.right, r.right), bottom: Math.min(box.bottom, r.bottom)};
      }
    }
    return box;
  };
  const rects = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    const parent = node.parentElement;
    if (!text || !parent || ["SCRIPT", "STYLE", "OPTION"].includes(parent.tagName)) continue;
    if (!parent.checkVisibility({visibilityProperty: true, opacityProperty: true})) continue;
    const clip = clipOf(parent);
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) {
      const box = {left: Math.max(r.left, clip.left), top: Math.max(r.top, clip.top),
                   right: Math.min(r.right, clip.right), bottom: Math.min(r.bottom, clip.bottom)};
      if (box.right - box.left < 2 || box.bottom - box.top < 2) continue;
      if (box.right > doc.clientWidth + 1 || box.left < -1) {
        const where = `${Math.round(box.left)}..${Math.round(box.right)}`;
        problems.push(`"${text.slice(0, 40)}" runs outside the viewport (${where})`);
      }
      rects.push({node, text, box});
    }
  }
  for (let i = 0; i < rects.length; i++) {
    for (let j = i + 1; j < rects.length; j++) {
      const a = rects[i], b = rects[j];
      if (a.node === b.node) continue;
      const w = Math.min(a.box.right, b.box.right) - Math.max(a.box.left, b.box.left);
      const h = Math.min(a.box.bottom, b.box.bottom) - Math.max(a.box.top, b.box.top);
      if (w > 1 && h > 1) {
        problems.push(`"${a.text.slice(0, 30)}" overlaps "${b.text.slice(0, 30)}"`);
      }
    }
  }
  return problems;
}
"""

_axe = Axe()


def settle(page: Page) -> None:
    """Wait for layout after a resize (two animation frames)."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def layout_problems(page: Page) -> list[str]:
    problems: list[str] = page.evaluate(LAYOUT_SCRIPT)
    return problems


def axe_problems(page: Page) -> list[str]:
    """Serious and critical axe-core violations, one line per element."""
    results = _axe.run(page)
    found: list[str] = []
    violations: list[dict[str, Any]] = results.response.get("violations", [])
    for violation in violations:
        if violation.get("impact") not in FAILING_IMPACTS:
            continue
        for node in violation.get("nodes", []):
            target = " ".join(str(t) for t in node.get("target", []))
            summary = node.get("failureSummary", "").replace("\n", " ")
            found.append(f"axe {violation['impact']} {violation['id']} at {target}: {summary}")
    return found


def axe_counts(page: Page) -> dict[str, int]:
    """Violations by impact (all of them, for the report)."""
    counts: dict[str, int] = {}
    for violation in _axe.run(page).response.get("violations", []):
        impact = str(violation.get("impact"))
        counts[impact] = counts.get(impact, 0) + len(violation.get("nodes", []))
    return counts
