// Running a downloaded training plan over the app's batches.
import { tf } from './deps.js';
import { InputKind } from './interpreter.js';

/** The plan's hyperparameter inputs (such as lr), read from the client config. */
export function hyperparameters(plan, clientConfig) {
  const values = {};
  for (const spec of plan.inputs) {
    if (spec.kind !== InputKind.HYPERPARAMETER) continue;
    if (!(spec.name in clientConfig)) {
      throw new Error(
        `plan ${plan.name} needs hyperparameter ${spec.name}; add it to the job's ` +
          'client_config',
      );
    }
    values[spec.name] = clientConfig[spec.name];
  }
  return values;
}

function batchSize(plan, batch) {
  const sizes = new Set();
  for (const spec of plan.inputs) {
    if (spec.kind !== InputKind.DATA || !(spec.name in batch)) continue;
    const value = batch[spec.name];
    const shape = value?.shape ?? null;
    sizes.add(Array.isArray(shape) ? shape[0] : value.length);
  }
  if (sizes.size !== 1) {
    throw new Error(`a batch's tensors must share their first dimension, got ${[...sizes]}`);
  }
  return [...sizes][0];
}

const pause = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Run the plan over every batch (client_config.epochs times, default 1).
 *
 * Each step feeds the current parameters, the batch and the hyperparameters,
 * and takes the updated parameters from the outputs named like the state;
 * the step's other tensors are freed at once. Scalar outputs (loss,
 * accuracy...) are averaged weighted by batch size. `onStep(info)` is called
 * after each step; `saveEvery` steps, `onSave(params)` is awaited (to keep
 * progress across a page reload).
 */
export async function train(plan, params, batches, clientConfig = {}, options = {}) {
  const lib = tf();
  const { onStep = null, onSave = null, saveEvery = 0, yieldEvery = 10 } = options;
  const epochs = options.epochs ?? Number(clientConfig.epochs ?? 1);
  const fixed = hyperparameters(plan, clientConfig);
  const stateNames = plan.stateNames;
  const owned = new Set();
  let current = {};
  for (const name of stateNames) {
    if (!(name in params)) throw new Error(`the parameters have no ${name}`);
    current[name] = params[name];
  }
  const sums = {};
  let seen = 0;
  let step = 0;
  const total = epochs * batches.length;
  for (let epoch = 0; epoch < epochs; epoch += 1) {
    for (const batch of batches) {
      const size = batchSize(plan, batch);
      const outputs = plan.run({ ...fixed, ...current, ...batch });
      const next = {};
      const metrics = {};
      for (const [name, tensor] of Object.entries(outputs)) {
        if (stateNames.includes(name)) {
          next[name] = tensor;
        } else {
          if (tensor.size === 1) metrics[name] = tensor.dataSync()[0];
          tensor.dispose();
        }
      }
      for (const name of stateNames) {
        if (owned.has(current[name])) current[name].dispose();
      }
      owned.clear();
      for (const tensor of Object.values(next)) owned.add(tensor);
      current = next;
      for (const [name, value] of Object.entries(metrics)) {
        sums[name] = (sums[name] ?? 0) + value * size;
      }
      seen += size;
      step += 1;
      if (onStep) onStep({ step, total, epoch, metrics });
      if (onSave && saveEvery > 0 && step % saveEvery === 0) await onSave(current);
      if (yieldEvery > 0 && step % yieldEvery === 0) await pause();
    }
  }
  const metrics = {};
  if (seen) for (const [name, value] of Object.entries(sums)) metrics[name] = value / seen;
  if (!owned.size) {
    for (const name of stateNames) current[name] = lib.clone(current[name]);
  }
  return { params: current, sampleCount: epochs ? seen / epochs : 0, metrics };
}
