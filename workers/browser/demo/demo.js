// The demo page: one browser worker on the grid that serves the page.
import * as fedgrid from '../src/index.js';

const $ = (id) => document.getElementById(id);
const losses = [];
let worker = null;

function log(message) {
  const line = document.createElement('div');
  line.textContent = `${new Date().toLocaleTimeString()} ${message}`;
  $('log').prepend(line);
}

function setState(text) {
  $('state').textContent = text;
}

function drawLosses() {
  const canvas = $('chart');
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (losses.length < 2) return;
  const top = Math.max(...losses);
  context.beginPath();
  losses.forEach((loss, i) => {
    const x = (i / (losses.length - 1)) * canvas.width;
    const y = canvas.height - (loss / top) * (canvas.height - 10);
    if (i === 0) context.moveTo(x, y);
    else context.lineTo(x, y);
  });
  context.strokeStyle = '#2563eb';
  context.stroke();
}

/**
 * The page's own data, shaped after the plan's inputs: a float input of
 * [batch, features] and an integer label input, labels given by a fixed random
 * linear rule so that there is something to learn.
 */
function makeBatches(plan, params, samples, batchSize) {
  const tf = window.tf;
  const dataSpecs = plan.inputs.filter((spec) => spec.kind === fedgrid.InputKind.DATA);
  const features = dataSpecs.find((spec) => spec.dtype === 1);
  const labels = dataSpecs.find((spec) => spec.dtype !== 1);
  if (!features || !labels || features.shape.length !== 2) {
    throw new Error('the demo makes data for plans with [batch, features] and label inputs');
  }
  const names = plan.stateNames;
  const classes = params[names[names.length - 1]].shape[0];
  const width = features.shape[1];
  const rule = tf.randomNormal([width, classes], 0, 1, 'float32', 7);
  const batches = [];
  for (let start = 0; start < samples; start += batchSize) {
    const rows = Math.min(batchSize, samples - start);
    const x = tf.randomNormal([rows, width], 0, 1, 'float32', start + 1);
    const y = tf.tidy(() => tf.argMax(tf.matMul(x, rule), 1));
    batches.push({ [features.name]: x, [labels.name]: y });
  }
  rule.dispose();
  return batches;
}

async function start() {
  $('start').disabled = true;
  $('stop').disabled = false;
  await fedgrid.loadDependencies('../node_modules/');
  $('backend').textContent = await fedgrid.initBackend();
  worker = new fedgrid.Worker(location.origin);
  const job = worker.newJob({ model: $('job').value, version: $('version').value || null });
  setState('asking for a cycle');

  job.on('rejected', (rejection) => {
    setState(`rejected (${rejection.reason}); asking again in ${rejection.retryAfter} s`);
    log(`rejected: ${rejection.message}`);
  });
  job.on('accepted', async (cycle) => {
    $('cycle').textContent = `${cycle.cycleNumber} (checkpoint ${cycle.checkpoint})`;
    $('deadline').textContent = new Date(cycle.deadline * 1000).toLocaleTimeString();
    setState(cycle.resumed ? 'training (resumed after a reload)' : 'training');
    log(`accepted into cycle ${cycle.cycleNumber}${cycle.resumed ? ', resumed' : ''}`);
    const batchSize = Number(cycle.clientConfig.batch_size ?? 16);
    const batches = makeBatches(cycle.plans.training_plan, cycle.params, Number($('samples').value), batchSize);
    const result = await job.train('training_plan', batches, {
      saveEvery: batches.length,
      onStep: ({ step, total, metrics }) => {
        $('progress').max = total;
        $('progress').value = step;
        if ('loss' in metrics) {
          losses.push(metrics.loss);
          $('loss').textContent = metrics.loss.toFixed(4);
          drawLosses();
        }
        if ('accuracy' in metrics) $('accuracy').textContent = metrics.accuracy.toFixed(3);
      },
    });
    batches.forEach((batch) => window.tf.dispose(Object.values(batch)));
    setState('reporting');
    const samples = batches.reduce((n, batch) => n + Object.values(batch)[0].shape[0], 0);
    await job.report(result.params, { sampleCount: samples, metrics: result.metrics });
    window.tf.dispose(Object.values(result.params));
  });
  job.on('reported', (answer) => {
    setState('reported; asking for the next cycle');
    log('diff reported');
    // What automated checks of the page read (tools/run-page.mjs).
    window.fedgridTest = { state: 'done', result: { answer, losses } };
  });
  job.on('done', (message) => {
    setState(`done: ${message}`);
    log('the job is finished');
    $('stop').disabled = true;
  });
  job.on('error', (error) => {
    setState(`error: ${error.message}`);
    log(`error: ${error.message}`);
  });
  job.start();
}

$('start').addEventListener('click', () => start().catch((error) => setState(`error: ${error.message}`)));
$('stop').addEventListener('click', async () => {
  await worker?.stop();
  setState('stopped');
  $('start').disabled = false;
  $('stop').disabled = true;
});
const wanted = new URLSearchParams(location.search);
if (wanted.has('job')) {
  $('job').value = wanted.get('job');
  start().catch((error) => setState(`error: ${error.message}`));
}
