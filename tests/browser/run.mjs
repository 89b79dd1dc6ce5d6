// Drives headless Chromium through the test host (`host.html`, `host.js`) against a running
// `reve-mcp serve --http`, and leaves what the page showed in REVE_BROWSER_OUT: screenshots and
// report.json, which `cargo xtask browser` checks. Started by that task, with:
//   REVE_BROWSER_TOOLS  the folder the pinned npm packages are installed in
//   REVE_CHROMIUM       Chromium's executable
//   REVE_MCP_URL        the server's MCP endpoint
//   REVE_INPUT          the picture to edit
//   REVE_SECOND_INPUT   a second picture, which a remix gets after the first
//   REVE_BROWSER_OUT    where to write
import { createServer } from "node:http";
import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const env = process.env;
const require = createRequire(env.REVE_BROWSER_TOOLS + "/node_modules/");
const { chromium } = require("playwright-core");
const esbuild = require("esbuild");
const here = fileURLToPath(new URL(".", import.meta.url));
const out = env.REVE_BROWSER_OUT;
// Every wait is bounded: a viewer that never shows fails the run instead of hanging it.
const PATIENCE = 30_000;

const bundle = await esbuild.build({
  entryPoints: [here + "host.js"],
  bundle: true,
  format: "esm",
  platform: "browser",
  write: false,
  nodePaths: [env.REVE_BROWSER_TOOLS + "/node_modules"],
  logLevel: "warning",
});
const files = {
  "/": ["text/html", await readFile(here + "host.html")],
  "/host.js": ["text/javascript", bundle.outputFiles[0].contents],
};
const server = createServer((request, response) => {
  const file = files[request.url];
  response.writeHead(file ? 200 : 404, { "content-type": file ? file[0] : "text/plain" });
  response.end(file ? file[1] : "not found");
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: env.REVE_CHROMIUM,
  chromiumSandbox: false,
  args: ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const report = { requests: [], console: [] };
try {
  const context = await browser.newContext({ viewport: { width: 800, height: 1000 }, deviceScaleFactor: 1 });
  context.on("request", (request) => report.requests.push(request.url()));
  const page = await context.newPage();
  page.on("console", (message) => report.console.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => report.console.push(`pageerror: ${error.message}`));
  const input = "data:image/png;base64," + (await readFile(env.REVE_INPUT)).toString("base64");
  const second = "data:image/png;base64," + (await readFile(env.REVE_SECOND_INPUT)).toString("base64");
  await page.addInitScript((config) => (window.__reveConfig = config), {
    mcpUrl: env.REVE_MCP_URL,
    tool: "edit_image",
    arguments: { prompt: "Invert the colours", image_url: input },
  });
  await page.goto(origin + "/");
  const viewer = page.frameLocator("iframe#viewer");
  const text = (selector) => viewer.locator(selector).textContent();
  const box = async (selector) => {
    const element = viewer.locator(selector);
    const { x, y, width, height } = await element.boundingBox();
    const natural = await element.evaluate((image) => [image.naturalWidth || 0, image.naturalHeight || 0]);
    return { x, y, width, height, natural };
  };
  const failed = () => page.evaluate(() => window.__reveHost.error);

  // The edit outlasts the server's wait: the first result says it is running.
  await page.waitForFunction(() => window.__reveHost.firstStatus || window.__reveHost.error, null, { timeout: PATIENCE });
  await viewer.locator('#status[data-state="running"]').waitFor({ timeout: PATIENCE });
  report.runningMessage = await text("#message");
  report.runningPrompt = await text("#prompt");
  // The input picture, as the server saw it, shows while the edit runs.
  await viewer.locator("#before-img:not([hidden])").waitFor({ timeout: PATIENCE });
  report.resultHiddenWhileRunning = await viewer.locator("#after-img").isHidden();
  await page.screenshot({ path: out + "/running.png" });

  // The viewer collects it through the host (tools/call get_edit) and shows both pictures.
  for (const picture of ["#before-img", "#after-img"]) {
    await viewer.locator(picture + ":not([hidden])").waitFor({ timeout: PATIENCE }).catch(async (error) => {
      throw new Error(`${picture} never showed (${(await failed()) || error.message})`);
    });
    await viewer.locator(picture).evaluate((image) => image.decode());
  }
  report.firstStatus = await page.evaluate(() => window.__reveHost.firstStatus);
  report.status = await text("#status");
  report.prompt = await text("#prompt");
  report.beforeInfo = await text("#before-info");
  report.afterInfo = await text("#after-info");
  report.savedPath = await text("#saved-path");
  report.before = await box("#before-img");
  report.after = await box("#after-img");
  report.frameHeight = (await page.locator("iframe#viewer").boundingBox()).height;
  report.sizes = await page.evaluate(() => window.__reveHost.sizes);
  await page.screenshot({ path: out + "/side-by-side.png" });
  await page.locator("iframe#viewer").screenshot({ path: out + "/viewer.png" });

  // The slider, by keyboard: Home puts the line at the left (all after), End at the right.
  await viewer.locator("#mode-slider").click();
  await viewer.locator("#slider").focus();
  await page.keyboard.press("Home");
  report.compare = await box("#compare");
  report.sliderAtHome = await viewer.locator("#slider").inputValue();
  await page.screenshot({ path: out + "/slider-home.png" });
  await page.keyboard.press("End");
  report.sliderAtEnd = await viewer.locator("#slider").inputValue();
  await page.screenshot({ path: out + "/slider-end.png" });

  // The host switches to its dark theme.
  await viewer.locator("#mode-side").click();
  await page.evaluate(() => window.__reveHost.setTheme("dark"));
  await viewer.locator('html[data-theme="dark"]').waitFor({ timeout: PATIENCE });
  report.darkBackground = await viewer.locator("body").evaluate((body) => getComputedStyle(body).backgroundColor);
  await page.locator("iframe#viewer").screenshot({ path: out + "/viewer-dark.png" });
  report.hostError = await failed();
  // This host declared none of what the view's controls need: it shows none of them.
  report.controlsShown = await viewer.locator("#use-this, #download, #fullscreen, #again-form").evaluateAll(
    (controls) => controls.filter((control) => !control.hidden).map((control) => control.id));
  const firstJob = await page.evaluate(() => window.__reveHost.jobId);
  report.firstJob = firstJob;

  // The first result edited again by reference, in a host that lets the view put a picture in
  // the model's context, download, send a message and go fullscreen.
  {
    const versions = await context.newPage();
    versions.on("pageerror", (error) => report.console.push(`pageerror: ${error.message}`));
    versions.on("console", (message) => report.console.push(`versions ${message.type()}: ${message.text()}`));
    await versions.addInitScript((config) => (window.__reveConfig = config), {
      mcpUrl: env.REVE_MCP_URL,
      tool: "edit_image",
      arguments: { prompt: "Invert them back", image_url: "job:" + firstJob },
      host: {
        capabilities: { updateModelContext: { text: {}, image: {} }, downloadFile: {}, message: { text: {} } },
        displayModes: ["inline", "fullscreen"],
      },
    });
    await versions.goto(origin + "/");
    const view = versions.frameLocator("iframe#viewer");
    const hostError = () => versions.evaluate(() => window.__reveHost.error || null);
    await view.locator("#versions-strip button").nth(1).waitFor({ timeout: PATIENCE }).catch(async (error) => {
      throw new Error(`the versions never showed (${(await hostError()) || error.message})`);
    });
    const shown = async (name) => {
      for (const picture of ["#before-img", "#after-img"]) await view.locator(picture).evaluate((image) => image.decode());
      await versions.screenshot({ path: out + `/${name}.png` });
      const boxes = {};
      for (const picture of ["before", "after"]) {
        const { x, y, width, height } = await view.locator(`#${picture}-img`).boundingBox();
        boxes[picture] = { x, y, width, height };
      }
      return boxes;
    };
    const strip = () => view.locator("#versions-strip button").evaluateAll((buttons) => buttons.map((button) => ({
      job: button.dataset.job, current: button.getAttribute("aria-current"), label: button.textContent,
      thumbnail: (button.querySelector("img") || {}).naturalWidth || 0 })));
    await view.locator("#versions-strip img").nth(1).evaluate((image) => image.decode());
    const jobId = await versions.evaluate(() => window.__reveHost.jobId);
    const latest = await shown("versions");
    const line = await strip();
    // The first version, against what it was given.
    await view.locator("#versions-strip button").nth(0).click();
    await view.locator(`#versions-strip button[aria-current="true"][data-job="${firstJob}"]`).waitFor({ timeout: PATIENCE });
    await view.locator("#after-img").evaluate((image) => image.decode());
    const first = await shown("versions-first");
    const afterFirst = await view.locator("#job-id").textContent();
    // Back to the latest; then each control.
    await view.locator("#versions-strip button").nth(1).click();
    await view.locator(`#versions-strip button[aria-current="true"][data-job="${jobId}"]`).waitFor({ timeout: PATIENCE });
    const controls = await view.locator("#use-this, #download, #fullscreen, #again-form").evaluateAll(
      (controls) => controls.filter((control) => !control.hidden).map((control) => control.id));
    const received = (count) => versions.waitForFunction((count) => window.__reveHost.received.length >= count, count, { timeout: PATIENCE });
    await view.locator("#use-this").click();
    await received(1);
    await view.locator("#download").click();
    await received(2);
    await view.locator("#again-prompt").fill("Now add a hat");
    await view.locator("#again").click();
    await received(3);
    await view.locator("#fullscreen").click();
    await received(4);
    await view.locator("#fullscreen", { hasText: "Exit fullscreen" }).waitFor({ timeout: PATIENCE });
    report.versions = {
      jobId, line, latest, first, afterFirst, controls,
      said: await view.locator("#action-said").textContent(),
      received: await versions.evaluate(() => window.__reveHost.received),
      hostError: await hostError(),
    };
    await versions.locator("iframe#viewer").screenshot({ path: out + "/viewer-versions.png" });
    await versions.close();
  }

  // The same viewer in a host whose client speaks the 2026-07-28 wire, where the server answers
  // no ping: the view pings its host, which answers it itself, and renders as before.
  {
    const modern = await context.newPage();
    modern.on("pageerror", (error) => report.console.push(`pageerror: ${error.message}`));
    modern.on("console", (message) => report.console.push(`2026-07-28 ${message.type()}: ${message.text()}`));
    await modern.addInitScript((config) => (window.__reveConfig = config), {
      mcpUrl: env.REVE_MCP_URL,
      protocol: "2026-07-28",
      tool: "edit_image",
      arguments: { prompt: "Invert the colours on the 2026 wire", image_url: input },
    });
    await modern.goto(origin + "/");
    const view = modern.frameLocator("iframe#viewer");
    const hostError = () => modern.evaluate(() => window.__reveHost.error || null);
    await view.locator('#status[data-state="succeeded"]').waitFor({ timeout: PATIENCE }).catch(async (error) => {
      throw new Error(`the 2026-07-28 edit never finished (${(await hostError()) || error.message})`);
    });
    for (const picture of ["#before-img", "#after-img"]) {
      await view.locator(picture + ":not([hidden])").waitFor({ timeout: PATIENCE });
      await view.locator(picture).evaluate((image) => image.decode());
    }
    report.modern = {
      protocol: await modern.evaluate(() => window.__reveHost.protocol),
      ping: await modern.evaluate(() => window.__reveHost.ping),
      status: await view.locator("#status").textContent(),
      pictures: await view.locator("#before-img, #after-img").evaluateAll(
        (images) => images.map((image) => [image.naturalWidth, image.naturalHeight])),
      hostError: await hostError(),
    };
    await modern.locator("iframe#viewer").screenshot({ path: out + "/viewer-2026.png" });
    await modern.close();
  }

  // A picture made from words shows alone; a remix shows the pictures it was given as a strip,
  // then the result. Each in a page of its own, as a host shows each call.
  const kinds = {
    create: { tool: "create_image", arguments: { prompt: "A lighthouse at dawn", aspect_ratio: "1:1" } },
    remix: { tool: "remix_images", arguments: { prompt: "Put them side by side", image_urls: [input, second] } },
  };
  for (const [kind, call] of Object.entries(kinds)) {
    const other = await context.newPage();
    other.on("pageerror", (error) => report.console.push(`pageerror: ${error.message}`));
    await other.addInitScript((config) => (window.__reveConfig = config), { mcpUrl: env.REVE_MCP_URL, ...call });
    await other.goto(origin + "/");
    const view = other.frameLocator("iframe#viewer");
    await view.locator('#status[data-state="succeeded"]').waitFor({ timeout: PATIENCE }).catch(async (error) => {
      throw new Error(`the ${kind} never finished (${(await other.evaluate(() => window.__reveHost.error)) || error.message})`);
    });
    await view.locator("#after-img:not([hidden])").waitFor({ timeout: PATIENCE });
    await view.locator("#after-img").evaluate((image) => image.decode());
    if (kind === "remix") await view.locator("#before-strip img").nth(1).waitFor({ timeout: PATIENCE });
    report[kind] = {
      title: await view.locator("#title").textContent(),
      status: await view.locator("#status").textContent(),
      beforeShown: await view.locator("#before-figure").isVisible(),
      modesShown: await view.locator("#modes").isVisible(),
      beforeInfo: await view.locator("#before-info").textContent(),
      afterLabel: await view.locator("#after-label").textContent(),
      after: await view.locator("#after-img").evaluate((image) => [image.naturalWidth, image.naturalHeight]),
      strip: await view.locator("#before-strip img").evaluateAll((images) => images.map((image) => [image.naturalWidth, image.naturalHeight])),
      hostError: await other.evaluate(() => window.__reveHost.error || null),
    };
    await other.locator("iframe#viewer").screenshot({ path: out + `/viewer-${kind}.png` });
    await other.close();
  }
} finally {
  report.origin = origin;
  await writeFile(out + "/report.json", JSON.stringify(report, null, 2));
  await browser.close();
  server.close();
}
