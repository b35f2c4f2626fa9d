// The live view's _esm after the first view of a kernel: the code itself is already in the page
// (a previous view registered it under KEY), or in localStorage (a reloaded page, another tab),
// or else the kernel sends it on request. VERSION (the code's hash) is prepended by _widget.py.
// Messages that come while the code loads are kept and applied once the view is drawn.
const KEY = "pipeline_nb.live." + VERSION;

async function load(model) {
  let source = null;
  try {
    source = localStorage.getItem(KEY);
  } catch (e) {
    // no storage: ask the kernel
  }
  source = source || await new Promise((resolve) => {
    const answer = (msg) => msg.code === VERSION && resolve(msg.source);
    model.on("msg:custom", answer);
    model.send({ code: VERSION });
  });
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  await import(url).finally(() => URL.revokeObjectURL(url));
  globalThis[KEY].keep(source);
}

async function render(view) {
  const backlog = [];
  const hold = (msg) => msg.code || backlog.push(msg);
  view.model.on("msg:custom", hold);
  if (!globalThis[KEY]) await load(view.model).finally(() => view.model.off("msg:custom", hold));
  view.model.off("msg:custom", hold);
  return globalThis[KEY].render(view, backlog);
}

export default { render };
