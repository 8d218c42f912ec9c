// The MJML editor: line numbers beside the textarea, the lines with problems marked in red,
// and "Line N" buttons in the problems list that move the caret to that line. The problems
// come from the server (the page, or the htmx preview answer) as [data-line] items.
"use strict";

(() => {
  const editor = document.querySelector("[data-editor]");
  if (!editor) return;
  const area = editor.querySelector("textarea");
  const gutter = editor.querySelector("[data-gutter]");
  let drawn = "";

  function badLines() {
    const lines = new Set();
    document.querySelectorAll("#problems [data-line]").forEach((item) => {
      lines.add(Number(item.dataset.line));
    });
    return lines;
  }

  function draw() {
    const count = area.value.split("\n").length;
    const bad = badLines();
    const key = `${count}:${[...bad].join(",")}`;
    if (key !== drawn) {
      drawn = key;
      const lines = document.createDocumentFragment();
      for (let i = 1; i <= count; i += 1) {
        const number = document.createElement("span");
        number.textContent = String(i);
        if (bad.has(i)) number.className = "bad";
        lines.append(number, "\n");
      }
      gutter.replaceChildren(lines);
    }
    gutter.scrollTop = area.scrollTop;
  }

  function goTo(line) {
    const lines = area.value.split("\n");
    const target = Math.min(Math.max(line, 1), lines.length);
    let start = 0;
    for (let i = 0; i < target - 1; i += 1) start += lines[i].length + 1;
    area.focus();
    area.setSelectionRange(start, start + lines[target - 1].length);
    const height = parseFloat(getComputedStyle(area).lineHeight) || 18;
    area.scrollTop = Math.max(0, (target - 1) * height - area.clientHeight / 3);
    draw();
  }

  area.addEventListener("input", draw);
  area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-goto-line]");
    if (button) goTo(Number(button.dataset.gotoLine));
  });
  document.body.addEventListener("htmx:afterSettle", () => {
    drawn = "";
    draw();
    area.setAttribute("aria-invalid", document.querySelector("#problems .problems") ? "true" : "false");
  });
  draw();
})();
