// Opens the page `reve-mcp view` wrote (a job's viewer with its pictures inside, no host) in
// headless Chromium, as a person opens it from disk, and leaves what it showed in
// REVE_BROWSER_OUT: screenshots and view-report.json, which `cargo xtask browser` checks.
// Started by that task, with:
//   REVE_BROWSER_TOOLS  the folder the pinned npm packages are installed in
//   REVE_CHROMIUM       Chromium's executable
//   REVE_VIEW_PAGE      the page's path
//   REVE_BROWSER_OUT    where to write
import { writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const env = process.env;
const require = createRequire(env.REVE_BROWSER_TOOLS + "/node_modules/");
const { chromium } = require("playwright-core");
const out = env.REVE_BROWSER_OUT;
// Every wait is bounded: a page that never shows fails the run instead of hanging it.
const PATIENCE = 30_000;

const browser = await chromium.launch({
  executablePath: env.REVE_CHROMIUM,
  chromiumSandbox: false,
  args: ["--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const report = { requests: [], console: [] };
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 760 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const url = pathToFileURL(env.REVE_VIEW_PAGE).href;
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  context.on("request", (request) => report.requests.push(request.url()));
  page.on("console", (message) => report.console.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => report.console.push(`pageerror: ${error.message}`));
  await page.goto(url);
  const box = async (selector) => {
    const { x, y, width, height } = await page.locator(selector).boundingBox();
    return { x, y, width, height };
  };

  await page.locator('#status[data-state="succeeded"]').waitFor({ timeout: PATIENCE });
  for (const picture of ["#before-img", "#after-img"]) {
    await page.locator(picture + ":not([hidden])").waitFor({ timeout: PATIENCE });
    await page.locator(picture).evaluate((image) => image.decode());
  }
  report.status = await page.locator("#status").textContent();
  report.prompt = await page.locator("#prompt").textContent();
  report.labels = {
    side: await page.locator("figcaption b").allTextContents(),
    slider: await page.locator(".slider-labels span").allTextContents(),
    tags: await page.locator(".tag").allTextContents(),
  };
  report.natural = {};
  for (const picture of ["before", "after"]) {
    report.natural[picture] = await page.locator(`#${picture}-img`).evaluate((image) => [image.naturalWidth, image.naturalHeight]);
    // A pane shows its picture with nothing around it: its frame's box is the picture's, and
    // the frame has no background of its own to show as bands.
    report[picture] = await box(`#${picture}-img`);
    report[`${picture}Frame`] = await box(`#${picture}-img >> xpath=..`);
    report[`${picture}FrameBackground`] = await page.locator(`#${picture}-img >> xpath=..`)
      .evaluate((frame) => getComputedStyle(frame).backgroundColor);
  }
  // `main` from the page's top left: the page's coordinates, without the empty page below.
  await page.locator("main").screenshot({ path: out + "/view-side.png" });
  report.savedPath = await page.locator("#saved-path").textContent();
  report.openHref = await page.locator("#open-path").getAttribute("href");
  // Every label the button takes after the click, whenever it changes back.
  await page.locator("#copy-path").evaluate((button) => {
    window.__copyLabels = [];
    new MutationObserver(() => window.__copyLabels.push(button.textContent)).observe(button, { childList: true, characterData: true, subtree: true });
  });
  await page.locator("#copy-path").click();
  await page.waitForFunction(() => window.__copyLabels.length > 0, null, { timeout: PATIENCE });
  report.copyLabel = await page.evaluate(() => window.__copyLabels[0]);
  report.clipboard = await page.evaluate(() => navigator.clipboard.readText()).catch((error) => "unreadable: " + error.message);

  // The slider at 20 %, by keyboard: the line and the thumb's centre at the same place.
  await page.locator("#mode-slider").click();
  await page.locator("#compare-after").evaluate((image) => image.decode());
  await page.locator("#slider").focus();
  await page.keyboard.press("Home");
  for (let step = 0; step < 20; step++) await page.keyboard.press("ArrowRight");
  report.sliderValue = await page.locator("#slider").inputValue();
  report.compare = await box("#compare");
  report.line = await box("#compare-line");
  report.slider = await box("#slider");
  await page.screenshot({ path: out + "/view-slider-20.png" });
  // For the README: the line in the middle, the slider not focused.
  await page.keyboard.press("End");
  for (let step = 0; step < 50; step++) await page.keyboard.press("ArrowLeft");
  await page.locator("#slider").blur();
  await page.locator("main").screenshot({ path: out + "/view-slider.png" });

  // A page of a result made from an earlier one shows the line of versions, as a host does.
  if (env.REVE_VIEW_HISTORY_PAGE) {
    const history = await context.newPage();
    history.on("pageerror", (error) => report.console.push(`pageerror: ${error.message}`));
    await history.goto(pathToFileURL(env.REVE_VIEW_HISTORY_PAGE).href);
    await history.locator("#versions-strip button").nth(1).waitFor({ timeout: PATIENCE });
    await history.locator("#versions-strip img").nth(0).evaluate((image) => image.decode());
    report.history = await history.locator("#versions-strip button").evaluateAll((buttons) => buttons.map((button) => ({
      job: button.dataset.job, current: button.getAttribute("aria-current"),
      thumbnail: (button.querySelector("img") || {}).naturalWidth || 0 })));
    // No host: nothing to send a picture or a message to.
    report.historyControls = await history.locator("#actions").isVisible();
    await history.locator("main").screenshot({ path: out + "/view-history.png" });
  }
} finally {
  await writeFile(out + "/view-report.json", JSON.stringify(report, null, 2));
  await browser.close();
}
