/* ManualQA chat: streams answers into the page, sends thumbs up/down and compare-mode choices.
 *
 * The question is POSTed with fetch() and the server-sent events of the answer are read from
 * the response body (EventSource cannot POST). While an answer streams, its text is added as
 * plain text nodes; when it is complete, the answer is replaced by the HTML the server rendered
 * and sanitised (the "html" of the done/failed event; the quote's own "html" shows it rendered
 * before then). Nothing a model or a manual wrote is ever inserted as HTML by this script
 * unless the server rendered and sanitised it. No framework, no CDN.
 *
 * Events: started, citations, at most one quote (the passage of the manual that answers, shown
 * in a "From the manual" box under the answer's text), tokens (sentences that passed
 * verification), then done or failed.
 */
(function () {
  "use strict";

  function csrfToken(form) {
    var input = (form || document).querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  /* A path on this site, or "" (citation links are never javascript: or off-site). */
  function localUrl(url) {
    url = String(url || "");
    return url.charAt(0) === "/" && url.charAt(1) !== "/" && url.indexOf("\\") < 0 ? url : "";
  }

  /* Server-rendered, sanitised HTML (from a done/failed event) as a node to insert. */
  function fromServerHtml(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  function showAlert(alertBox, text) {
    if (!alertBox) return;
    alertBox.textContent = text;
    alertBox.hidden = false;
  }

  function hideAlert(alertBox) {
    if (!alertBox) return;
    alertBox.textContent = "";
    alertBox.hidden = true;
  }

  /* Reads "event: name\ndata: {...}\n\n" blocks from a fetch() body; calls onEvent(name, data). */
  async function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n/g, "\n");
      var end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        var block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        var name = "message";
        var data = [];
        block.split("\n").forEach(function (line) {
          if (line.indexOf("event:") === 0) name = line.slice(6).trim();
          else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
        });
        if (data.length) {
          var payload;
          try {
            payload = JSON.parse(data.join("\n"));
          } catch (err) {
            continue;
          }
          onEvent(name, payload);
        }
      }
    }
  }

  /* The message to show for a refused question: the server's JSON error; a refusal that is
   * not JSON with 403 is the form's CSRF check (the page outlived its cookie): say so. */
  async function refusalText(response) {
    var text =
      response.status === 403
        ? "This page has expired. Reload it and ask again."
        : "The question could not be sent (HTTP " + response.status + ").";
    try {
      var body = await response.json();
      if (body && body.error) text = body.error;
    } catch (err) {
      /* not JSON: keep the generic text */
    }
    return text;
  }

  function questionBubble(text) {
    var bubble = el("div", "chat-msg chat-question");
    bubble.appendChild(el("p", "chat-role", "You"));
    bubble.appendChild(el("div", "chat-question-text", text));
    return bubble;
  }

  /* The answer while it streams: its text as plain text, the quote from the manual under it,
   * the sources as they arrive, and when the first text appeared. */
  function streamingAnswer(assistantName) {
    var article = el("article", "chat-msg chat-answer streaming");
    article.dataset.state = "streaming";
    article.setAttribute("aria-busy", "true");
    var head = el("header", "chat-msg-head");
    head.appendChild(el("span", "chat-role", assistantName || "Assistant"));
    head.appendChild(el("span", "badge badge-running chat-streaming-badge", "Answering…"));
    article.appendChild(head);
    var text = el("div", "chat-answer-text chat-answer-plain");
    article.appendChild(text);
    var quote = el("figure", "chat-quote");
    quote.hidden = true;
    quote.appendChild(el("figcaption", "chat-quote-label", "From the manual"));
    var quoteText = el("blockquote", "chat-quote-text chat-quote-plain");
    quote.appendChild(quoteText);
    var quoteSources = el("ul", "chat-quote-sources");
    quote.appendChild(quoteSources);
    article.appendChild(quote);
    var sources = el("div", "chat-sources");
    sources.hidden = true;
    var sourcesTitle = el("p", "chat-sources-title", "Sources");
    sources.appendChild(sourcesTitle);
    var list = el("ol", "chat-citations");
    sources.appendChild(list);
    article.appendChild(sources);
    var timing = el("p", "chat-timing");
    var ttft = el("span", "chat-ttft", "Waiting for the answer…");
    timing.appendChild(ttft);
    article.appendChild(timing);
    return {
      article: article,
      text: text,
      quote: quote,
      quoteText: quoteText,
      quoteSources: quoteSources,
      sources: sources,
      sourcesTitle: sourcesTitle,
      list: list,
      ttft: ttft,
      citations: [],
      quoteNumbers: [],
    };
  }

  /* A citation's link: "[n] Heading > path", to the passage on the manual's page. */
  function citationLink(citation, className) {
    var link = el("a", className);
    var href = localUrl(citation.url);
    if (href) link.href = href;
    if (citation.chunk_id !== undefined) link.dataset.chunkId = citation.chunk_id;
    link.appendChild(el("span", "chat-citation-n", "[" + citation.n + "]"));
    link.appendChild(document.createTextNode(" "));
    link.appendChild(
      el("span", "chat-citation-title", citation.heading_path || citation.title || "")
    );
    return link;
  }

  /* The figures of a cited passage, as thumbnails that open the picture (or nothing). */
  function citationFigures(citation) {
    var figures = Array.isArray(citation.figures) ? citation.figures : [];
    var box = el("div", "chat-citation-figures");
    figures.forEach(function (figure) {
      var src = localUrl(figure && figure.url);
      if (!src) return;
      var link = el("a", "chat-figure");
      link.href = src;
      link.target = "_blank";
      link.rel = "noopener";
      var img = el("img");
      img.src = src;
      img.alt = figure.caption || "";
      if (figure.caption) img.title = figure.caption;
      if (figure.width > 0 && figure.height > 0) {
        img.width = figure.width;
        img.height = figure.height;
      }
      img.loading = "lazy";
      img.decoding = "async";
      link.appendChild(img);
      box.appendChild(link);
    });
    return box.childNodes.length ? box : null;
  }

  /* The sources list: every citation, less those the quote from the manual links itself. */
  function showCitations(view, citations) {
    view.citations = citations || [];
    view.list.textContent = "";
    var listed = view.citations.filter(function (citation) {
      return view.quoteNumbers.indexOf(citation.n) < 0;
    });
    view.sourcesTitle.textContent = view.quoteNumbers.length ? "Other sources" : "Sources";
    listed.forEach(function (citation) {
      var item = el("li", "chat-citation");
      item.appendChild(citationLink(citation));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("span", "chat-citation-source", citation.source_name || ""));
      var figures = citationFigures(citation);
      if (figures) item.appendChild(figures);
      view.list.appendChild(item);
    });
    view.sources.hidden = !listed.length;
  }

  /* The quote from the manual, with links to where it is: as the server rendered and
   * sanitised it (its tables and lists as they will stay), else as plain text. */
  function showQuote(view, quote) {
    if (!quote || !quote.text) return false;
    if (quote.html) {
      view.quoteText.className = "chat-quote-text prose";
      view.quoteText.replaceChildren(fromServerHtml(quote.html));
    } else {
      view.quoteText.textContent = quote.text;
    }
    view.quoteSources.textContent = "";
    var numbers = quote.numbers || [];
    view.quoteNumbers = numbers;
    view.citations.forEach(function (citation) {
      if (numbers.indexOf(citation.n) < 0) return;
      var item = el("li");
      item.appendChild(citationLink(citation, "chat-quote-source"));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("span", "chat-citation-source", citation.source_name || ""));
      var figures = citationFigures(citation);
      if (figures) item.appendChild(figures);
      view.quoteSources.appendChild(item);
    });
    view.quote.hidden = false;
    showCitations(view, view.citations);
    return true;
  }

  /* Ask one question and stream its answer into `log`. Resolves to the stored answer's
   * event data ({message, error, ...}) or null when the question was refused. */
  async function ask(options) {
    var started = performance.now();
    var view = streamingAnswer(options.assistantName);
    var bubble = questionBubble(options.question);
    options.log.appendChild(bubble);
    options.log.appendChild(view.article);
    view.article.scrollIntoView({ block: "nearest" });

    var response;
    try {
      response = await fetch(options.url, {
        method: "POST",
        body: options.body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": options.csrf, Accept: "text/event-stream" },
      });
    } catch (err) {
      bubble.remove();
      view.article.remove();
      showAlert(options.alert, "The server could not be reached. Check your connection and try again.");
      return null;
    }
    var type = response.headers.get("Content-Type") || "";
    if (!response.ok || type.indexOf("text/event-stream") !== 0) {
      bubble.remove();
      view.article.remove();
      showAlert(options.alert, await refusalText(response));
      return null;
    }
    if (options.onAccepted) options.onAccepted();

    var result = null;
    var firstText = true;
    /* The owner's wait ends with the first text they can read: the quote or the answer's. */
    function textShown() {
      if (!firstText) return;
      firstText = false;
      view.ttft.textContent = "First text in " + Math.round(performance.now() - started) + " ms";
    }
    try {
      await readEvents(response, function (name, data) {
        if (name === "started") {
          if (options.onStarted) options.onStarted(data);
        } else if (name === "citations") {
          showCitations(view, data.citations);
        } else if (name === "quote") {
          if (showQuote(view, data.quote)) textShown();
        } else if (name === "token") {
          textShown();
          view.text.appendChild(document.createTextNode(data.text));
        } else if (name === "done" || name === "failed") {
          result = data;
          if (data.html) view.article.replaceWith(fromServerHtml(data.html));
          if (name === "failed") showAlert(options.alert, data.error || "The answer failed.");
        }
      });
    } catch (err) {
      /* the connection dropped: handled below as an incomplete answer */
    }
    if (result === null) {
      view.article.dataset.state = "failed";
      view.article.classList.remove("streaming");
      view.article.removeAttribute("aria-busy");
      view.text.appendChild(
        el("p", "chat-answer-error", "The connection was lost before the answer was complete.")
      );
      showAlert(options.alert, "The answer was interrupted. Ask again to get a complete answer.");
    }
    return result;
  }

  function bindCounter(textarea, counter) {
    if (!textarea || !counter) return;
    var max = parseInt(counter.dataset.max, 10);
    function update() {
      var length = textarea.value.trim().length;
      counter.textContent = length + " / " + max + " characters";
      counter.classList.toggle("over", length > max);
    }
    textarea.addEventListener("input", update);
    update();
  }

  /* ---- The chat page ----------------------------------------------------------------------- */

  function initChat(root) {
    var form = document.getElementById("chat-form");
    if (!form) return;
    var log = document.getElementById("chat-log");
    var alertBox = document.getElementById("chat-alert");
    var textarea = form.querySelector("textarea[name=question]");
    var sendButton = document.getElementById("chat-send");
    var conversationInput = form.querySelector("input[name=conversation]");
    var picker = document.getElementById("chat-assistant");
    bindCounter(textarea, document.getElementById("chat-counter"));

    if (picker) {
      /* Another assistant is another conversation: reload the page for it. */
      picker.addEventListener("change", function () {
        document.getElementById("chat-picker").submit();
      });
    }
    textarea.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      var question = textarea.value.trim();
      if (!question || sendButton.disabled) return;
      hideAlert(alertBox);
      var empty = document.getElementById("chat-empty");
      if (empty) empty.remove();
      sendButton.disabled = true;
      var body = new FormData(form);
      body.set("question", question);
      try {
        await ask({
          url: root.dataset.streamUrl,
          body: body,
          csrf: csrfToken(form),
          question: question,
          log: log,
          alert: alertBox,
          assistantName: picker ? picker.options[picker.selectedIndex].dataset.name : "",
          onAccepted: function () {
            textarea.value = "";
            textarea.dispatchEvent(new Event("input"));
          },
          onStarted: function (data) {
            if (conversationInput.value === String(data.conversation)) return;
            conversationInput.value = data.conversation;
            var url = root.dataset.conversationUrl.replace(/0\/$/, data.conversation + "/");
            history.replaceState(null, "", url);
            addToHistory(url, question);
          },
        });
      } finally {
        sendButton.disabled = false;
        textarea.focus();
      }
    });
  }

  function addToHistory(url, title) {
    var list = document.getElementById("chat-history");
    if (!list) return;
    var none = list.querySelector(".chat-history-empty");
    if (none) none.remove();
    list.querySelectorAll("a[aria-current]").forEach(function (a) {
      a.removeAttribute("aria-current");
    });
    var item = el("li");
    var link = el("a");
    link.href = url;
    link.setAttribute("aria-current", "page");
    link.appendChild(el("span", "chat-history-title", title.length > 80 ? title.slice(0, 79) + "…" : title));
    link.appendChild(el("span", "chat-history-meta", "just now"));
    item.appendChild(link);
    list.insertBefore(item, list.firstChild);
  }

  /* ---- Thumbs up/down (any page with answers) ---------------------------------------------- */

  /* "No" first opens the optional comment box; "Send thumbs-down" (or "No" again) sends it. */
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-opens-comment]") : null;
    if (!button) return;
    var panel = document.getElementById(button.getAttribute("aria-controls"));
    if (!panel || !panel.hidden) return;
    event.preventDefault();
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    panel.querySelector("textarea").focus();
  });

  document.addEventListener("submit", async function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-feedback]")) return;
    event.preventDefault();
    var submitter = event.submitter;
    var rating = submitter && submitter.name === "rating" ? submitter.value : "";
    if (!rating) return;
    var status = form.querySelector(".chat-feedback-status");
    var body = new FormData(form);
    body.set("rating", rating);
    form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    try {
      var response = await fetch(form.action, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(form), Accept: "application/json" },
      });
      var data = {};
      try {
        data = await response.json();
      } catch (err) {
        data = {};
      }
      if (response.ok) {
        status.textContent = data.message || "Thanks for your feedback.";
        status.classList.remove("error");
        form.querySelector(".chat-thumb[value=up]").setAttribute("aria-pressed", String(rating === "up"));
        var down = form.querySelector(".chat-thumb-down");
        down.setAttribute("aria-pressed", String(rating === "down"));
        down.setAttribute("aria-expanded", "false");
        form.querySelector(".chat-feedback-form").hidden = true;
      } else {
        status.textContent = data.error || "Your feedback could not be saved (HTTP " + response.status + ").";
        status.classList.add("error");
      }
    } catch (err) {
      status.textContent = "Your feedback could not be sent. Check your connection and try again.";
      status.classList.add("error");
    } finally {
      form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
    }
  });

  /* ---- Compare mode ------------------------------------------------------------------------ */

  function initCompare(root) {
    var form = document.getElementById("compare-form");
    if (!form) return;
    var alertBox = document.getElementById("chat-alert");
    var textarea = document.getElementById("compare-question");
    var sendButton = document.getElementById("compare-send");
    var verdict = document.getElementById("compare-verdict");
    var verdictStatus = document.getElementById("compare-verdict-status");
    var pickers = { a: document.getElementById("compare-a"), b: document.getElementById("compare-b") };
    var answers = { a: null, b: null };
    bindCounter(textarea, document.getElementById("compare-counter"));

    function titles() {
      ["a", "b"].forEach(function (side) {
        var picker = pickers[side];
        document.getElementById("compare-" + side + "-heading").textContent =
          side.toUpperCase() + ": " + picker.options[picker.selectedIndex].text;
      });
    }
    pickers.a.addEventListener("change", titles);
    pickers.b.addEventListener("change", titles);
    titles();

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      var question = textarea.value.trim();
      if (!question || sendButton.disabled) return;
      hideAlert(alertBox);
      verdict.hidden = true;
      verdictStatus.textContent = "";
      verdict.querySelectorAll("button").forEach(function (b) {
        b.disabled = false;
        b.setAttribute("aria-pressed", "false");
      });
      sendButton.disabled = true;
      answers = { a: null, b: null };
      var csrf = csrfToken(form);
      if (root.dataset.hasSession !== "1") {
        // Both answers must belong to one session: get it before asking twice at once.
        await fetch(root.dataset.sessionUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRFToken": csrf },
        });
        root.dataset.hasSession = "1";
      }
      // Both questions go at once; each answer streams into its own column.
      var results = await Promise.all(
        ["a", "b"].map(function (side) {
          var log = document.getElementById("compare-log-" + side);
          log.textContent = "";
          var body = new FormData();
          body.set("assistant", pickers[side].value);
          body.set("question", question);
          return ask({
            url: root.dataset.streamUrl,
            body: body,
            csrf: csrf,
            question: question,
            log: log,
            alert: alertBox,
            assistantName: pickers[side].options[pickers[side].selectedIndex].dataset.name,
          });
        })
      );
      sendButton.disabled = false;
      answers = { a: results[0], b: results[1] };
      var usable = ["a", "b"].every(function (side) {
        return answers[side] && answers[side].message && !answers[side].error;
      });
      if (usable) {
        textarea.value = "";
        textarea.dispatchEvent(new Event("input"));
        verdict.hidden = false;
      }
    });

    verdict.addEventListener("click", async function (event) {
      var button = event.target.closest("button[data-chosen]");
      if (!button || !answers.a || !answers.b) return;
      var body = new FormData();
      body.set("message_a", answers.a.message);
      body.set("message_b", answers.b.message);
      body.set("chosen", button.dataset.chosen);
      var response = await fetch(root.dataset.preferenceUrl, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(form), Accept: "application/json" },
      });
      var data = {};
      try {
        data = await response.json();
      } catch (err) {
        data = {};
      }
      if (response.ok) {
        verdict.querySelectorAll("button").forEach(function (b) {
          b.setAttribute("aria-pressed", String(b === button));
        });
        verdictStatus.textContent = data.message || "Recorded. Thank you!";
        verdictStatus.classList.remove("error");
      } else {
        verdictStatus.textContent = data.error || "Your choice could not be saved (HTTP " + response.status + ").";
        verdictStatus.classList.add("error");
      }
    });
  }

  var chat = document.getElementById("chat");
  if (chat) initChat(chat);
  var compare = document.getElementById("compare");
  if (compare) initCompare(compare);
})();
