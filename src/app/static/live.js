// The home page's live timeline: new posts appear at the top, edited ones change in place and
// deleted ones go, without a reload. Without JavaScript (or EventSource) the page is the same, only not live.
(() => {
  "use strict";
  const feed = document.querySelector("[data-live-stream]");
  if (!feed || !("EventSource" in window)) return;

  const stream = new EventSource(feed.dataset.liveStream);
  stream.addEventListener("post", (event) => {
    const post = JSON.parse(event.data);
    if (document.getElementById(`post-${post.id}`)) return;
    feed.querySelector(".no-posts")?.remove();
    feed.prepend(article(post));
  });
  stream.addEventListener("edit", (event) => {
    const post = JSON.parse(event.data);
    const shown = document.getElementById(`post-${post.id}`);
    if (!shown) return;
    shown.querySelector("p").textContent = post.body;
    shown.querySelector(".edited").hidden = false;
  });
  stream.addEventListener("delete", (event) => {
    document.getElementById(`post-${JSON.parse(event.data).id}`)?.remove();
  });

  // The same markup as the server renders, built from text nodes only: a post is never HTML.
  function article(post) {
    const author = document.createElement("a");
    author.href = feed.dataset.authorUrl.replace("__author__", encodeURIComponent(post.author));
    author.textContent = post.author;
    const time = document.createElement("time");
    time.dateTime = post.created_at;
    time.textContent = `${new Date(post.created_at).toISOString().slice(0, 16).replace("T", " ")} UTC`;
    const edited = document.createElement("span");
    edited.className = "edited";
    edited.textContent = "(edited)";
    edited.hidden = !post.edited_at;
    const header = document.createElement("header");
    header.append(author, " ", time, " ", edited);
    const body = document.createElement("p");
    body.textContent = post.body;
    const node = document.createElement("article");
    node.className = "post live";
    node.id = `post-${post.id}`;
    node.append(header, body);
    return node;
  }
})();
