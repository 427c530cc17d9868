// n2n check's class page: sort the table by a column (click its header), open a submission's
// findings (click its name). Inlined into class.html, which loads nothing else.
// The address can ask for both on load: class.html#sort=COLUMN&open=NAME (a link to share).
"use strict";

// worst first, so an ascending sort on a block puts the failures on top
const RANK = { FAIL: 0, error: 1, "not checked": 2, pass: 3 };

function key(group, column, type) {
  const value = group.rows[0].cells[column].dataset.value;
  if (type === "number") return Number(value);
  if (type === "cell") return RANK[value] ?? 9;
  return value;
}

function sortBy(header) {
  const table = header.closest("table");
  const column = header.cellIndex;
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  const groups = Array.from(table.tBodies);
  groups.sort((a, b) => {
    const x = key(a, column, header.dataset.type);
    const y = key(b, column, header.dataset.type);
    const order = x < y ? -1 : x > y ? 1 : 0;
    return (ascending ? order : -order) || a.dataset.name.localeCompare(b.dataset.name);
  });
  for (const th of header.parentNode.cells) th.removeAttribute("aria-sort");
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  for (const group of groups) table.appendChild(group); // one tbody per submission: details move with it
}

function open(name, show) {
  const group = document.getElementById("s-" + name);
  if (!group) return;
  const button = group.querySelector("button.open");
  const visible = show ?? button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(visible));
  group.rows[1].hidden = !visible;
  if (show) group.scrollIntoView();
}

function fromAddress() {
  const asked = new URLSearchParams(location.hash.slice(1));
  if (asked.has("sort")) {
    const header = Array.from(document.querySelectorAll("#class th")).find(
      (th) => th.dataset.column === asked.get("sort"));
    if (header) header.click();
  }
  if (asked.has("open")) open(asked.get("open"), true);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const th of document.querySelectorAll("#class th")) th.addEventListener("click", () => sortBy(th));
  for (const button of document.querySelectorAll("button.open")) {
    button.addEventListener("click", () => open(button.dataset.name));
  }
  for (const link of document.querySelectorAll("a.goto")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      open(link.dataset.name, true);
    });
  }
  fromAddress();
  document.body.dataset.ready = "yes"; // for a test that waits for the page
});
