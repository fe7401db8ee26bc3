// Runs the original TensorFlow.js graph model on tfjs's pure-JavaScript CPU backend: the reference the
// converted ONNX file is checked against (models/coco/verify.py). Build time only, never on a device.
//
//   node run_tfjs.mjs MODEL.json OUT_DIR INPUT.f32 [INPUT.f32 ...]
//
// Each input is raw little-endian float32 in the model's own input shape (NHWC, RGB, 0..255). For each,
// OUT_DIR/<input stem>.<output>.f32 is written for every output in the model's signature, and one JSON
// line per input is printed with the output shapes and the milliseconds the run took.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import '@tensorflow/tfjs-backend-cpu';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import * as tf from '@tensorflow/tfjs-core';

function loader(modelPath) {
  const model = JSON.parse(readFileSync(modelPath, 'utf8'));
  const folder = dirname(modelPath);
  return {
    load: async () => {
      const specs = [];
      const buffers = [];
      for (const group of model.weightsManifest) {
        specs.push(...group.weights);
        for (const path of group.paths) buffers.push(readFileSync(join(folder, path)));
      }
      const joined = Buffer.concat(buffers);
      return {
        modelTopology: model.modelTopology,
        format: model.format,
        generatedBy: model.generatedBy,
        convertedBy: model.convertedBy,
        signature: model.signature,
        weightSpecs: specs,
        weightData: joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength),
      };
    },
  };
}

async function main() {
  const [modelPath, outDir, ...inputs] = process.argv.slice(2);
  if (!modelPath || !outDir || inputs.length === 0) {
    console.error('usage: node run_tfjs.mjs MODEL.json OUT_DIR INPUT.f32 [INPUT.f32 ...]');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  const model = await loadGraphModel(loader(modelPath));
  const [inputName] = Object.keys(model.modelSignature.inputs);
  const shape = model.modelSignature.inputs[inputName].tensorShape.dim.map((d) => Number(d.size));
  const outputNames = Object.keys(model.modelSignature.outputs);
  for (const inputPath of inputs) {
    const raw = readFileSync(inputPath);
    const values = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    const input = tf.tensor(values, shape, 'float32');
    const started = performance.now();
    const outputs = await model.executeAsync(input, outputNames);
    const ms = performance.now() - started;
    const stem = basename(inputPath).replace(/\.f32$/, '');
    const shapes = {};
    for (const [index, name] of outputNames.entries()) {
      const data = await outputs[index].data();
      shapes[name] = outputs[index].shape;
      const file = `${stem}.${name.replaceAll('/', '_')}.f32`;
      writeFileSync(join(outDir, file), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    }
    tf.dispose([input, ...outputs]);
    console.log(JSON.stringify({ input: inputPath, backend: tf.getBackend(), tfjs: tf.version_core, ms, shapes }));
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
