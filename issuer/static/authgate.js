// authgate's pages: the few things a page cannot do without script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const back of document.querySelectorAll("[data-back]")) {
    back.addEventListener("click", (event) => { event.preventDefault(); history.back(); });
  }
  // The part of the URL after '#' never reaches a server, so the sign-in page hands it to
  // the forms and the provider links, and the return URL keeps it.
  const fragment = window.location.hash.slice(1);
  if (!fragment) { return; }
  for (const input of document.querySelectorAll('input[name="fragment"]')) {
    input.value = fragment;
  }
  for (const link of document.querySelectorAll("a[data-keeps-fragment]")) {
    const url = new URL(link.href);
    url.searchParams.set("fragment", fragment);
    link.href = url.toString();
  }
});
