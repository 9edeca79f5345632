/**
 * The captioning model: the CNN encoder reads an image into a feature vector, the feature sets
 * the decoder's initial state, and a recurrent decoder writes the caption one word at a time.
 * The decoder step is written once (`step`); teacher forcing, scheduled sampling, greedy,
 * beam and sampled decoding all call it.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from './rng.ts';
import { cellStep, createCell, type CellKind, type CellState } from './cells.ts';
import type { ConfigSpec } from './config.ts';
import { Encoder, type EncoderConfig } from './encoder.ts';
import { constant, glorotUniform, uniform } from './init.ts';
import { sampleCategorical, uniforms } from './sampling.ts';
import type { Vocabulary } from './vocab.ts';

/** Everything that fixes the model's architecture; saved in every checkpoint. */
export interface ModelConfig extends EncoderConfig {
  embeddingSize: number;
  hiddenSize: number;
  cell: CellKind;
  /** Where the image feature enters the decoder: the initial state only, or also every step's input. */
  featureInput: 'init' | 'every-step';
  /** Longest caption, in words (longer training captions are cut). */
  maxLength: number;
  /** Words seen fewer times than this in the training captions become <unk>. */
  minWordCount: number;
}

/** The standard configuration (../shared/bench/std-config.md). */
export const MODEL_DEFAULTS = {
  imageSize: 64,
  encoderChannels: [32, 64, 128, 256],
  featureSize: 256,
  encoderPooling: 'average',
  backbone: null,
  backboneTrainable: false,
  embeddingSize: 256,
  hiddenSize: 512,
  cell: 'lstm',
  featureInput: 'init',
  maxLength: 16,
  minWordCount: 5,
} satisfies ModelConfig;

export const MODEL_SPEC: ConfigSpec<ModelConfig> = {
  imageSize: { type: 'number', integer: true, min: 8, describe: 'input image side in pixels' },
  encoderChannels: { type: 'number[]', integer: true, min: 1, describe: 'channels of each conv block (comma-separated)' },
  featureSize: { type: 'number', integer: true, min: 1, describe: 'image feature size' },
  encoderPooling: { type: 'string', choices: ['average', 'flatten'], describe: 'last feature map to vector: global average, or flattened (keeps where things are)' },
  backbone: { type: 'string', nullable: true, describe: 'path of a TF.js LayersModel to use as the CNN backbone' },
  backboneTrainable: { type: 'boolean', describe: 'fine-tune the backbone (else frozen)' },
  embeddingSize: { type: 'number', integer: true, min: 1, describe: 'word embedding size' },
  hiddenSize: { type: 'number', integer: true, min: 1, describe: 'recurrent units' },
  cell: { type: 'string', choices: ['lstm', 'gru'], describe: 'recurrent cell' },
  featureInput: { type: 'string', choices: ['init', 'every-step'], describe: 'image feature enters the initial state only, or every step too' },
  maxLength: { type: 'number', integer: true, min: 1, describe: 'longest caption in words' },
  minWordCount: { type: 'number', integer: true, min: 1, describe: 'minimum count for a word to enter the vocabulary' },
};

export const MODEL_KEYS = Object.keys(MODEL_SPEC) as (keyof ModelConfig)[];

/** A step's output: logits [batch, vocab] over the next word, and the new recurrent state. */
export interface StepOutput {
  logits: tf.Tensor2D;
  state: CellState;
}

/** How the training forward pass chooses each step's input (Bengio et al. 2015). */
export interface ForwardOptions {
  /** ε: probability that a step's input is the true previous word; 1 is teacher forcing. */
  teacherProbability: number;
  /** The model's own previous word: its argmax, or a sample from its distribution. */
  feed: 'argmax' | 'sample';
  /** Draws the coin flips (and samples); required when ε < 1. */
  rng?: Rng;
  training?: boolean;
}

export class Captioner {
  private constructor(
    readonly config: ModelConfig,
    readonly vocab: Vocabulary,
    readonly encoder: Encoder,
    private readonly params: Record<string, tf.Variable>,
  ) {}

  /** A new model with weights drawn from `seed`. */
  static async create(config: ModelConfig, vocab: Vocabulary, seed: number): Promise<Captioner> {
    const rng = new Rng(seed);
    const encoder = await Encoder.create(config, rng);
    return new Captioner(config, vocab, encoder, Captioner.decoderParams(config, vocab, rng));
  }

  /** A model of the saved architecture, with the saved weights. */
  static async restore(config: ModelConfig, vocab: Vocabulary, weights: tf.NamedTensorMap, backboneTopology: object | null): Promise<Captioner> {
    const rng = new Rng(0);
    const encoder = await Encoder.fromTopology(config, backboneTopology, rng);
    const model = new Captioner(config, vocab, encoder, Captioner.decoderParams(config, vocab, rng));
    model.setWeights(weights, 'checkpoint');
    return model;
  }

  private static decoderParams(config: ModelConfig, vocab: Vocabulary, rng: Rng): Record<string, tf.Variable> {
    const { embeddingSize: E, hiddenSize: H, featureSize: F } = config;
    const V = vocab.size;
    const inputSize = config.featureInput === 'every-step' ? E + F : E;
    const p: Record<string, tf.Variable> = {
      'decoder/embedding': uniform(rng, [V, E], 0.1),
      'decoder/init_h/kernel': glorotUniform(rng, [F, H], F, H),
      'decoder/init_h/bias': constant([H], 0),
      ...createCell(config.cell, rng, inputSize, H, 'decoder/cell'),
      'decoder/output/kernel': glorotUniform(rng, [H, V], H, V),
      'decoder/output/bias': constant([V], 0),
    };
    if (config.cell === 'lstm') {
      p['decoder/init_c/kernel'] = glorotUniform(rng, [F, H], F, H);
      p['decoder/init_c/bias'] = constant([H], 0);
    }
    return p;
  }

  private p(name: string): tf.Variable {
    const v = this.params[name];
    if (!v) throw new Error(`missing parameter ${name}`);
    return v;
  }

  /** images [batch, size, size, 3] in [0, 1] → features [batch, featureSize]. */
  encode(images: tf.Tensor4D, training = false): tf.Tensor2D {
    return this.encoder.apply(images, training);
  }

  /** h0 = tanh(W_h·feature + b_h) and, for the LSTM, c0 = tanh(W_c·feature + b_c). */
  initialState(features: tf.Tensor2D): CellState {
    const dense = (name: string) => tf.tanh(tf.add(tf.matMul(features, this.p(`${name}/kernel`)), this.p(`${name}/bias`))) as tf.Tensor2D;
    return this.config.cell === 'lstm' ? { h: dense('decoder/init_h'), c: dense('decoder/init_c') } : { h: dense('decoder/init_h') };
  }

  /**
   * The decoder step, written once: previous words [batch] (int32), the state, and the image
   * features [batch, featureSize] → logits [batch, vocab] over the next word and the new state.
   */
  step(prevTokens: tf.Tensor1D, state: CellState, features: tf.Tensor2D): StepOutput {
    let x = tf.gather(this.p('decoder/embedding'), prevTokens) as tf.Tensor2D; // [batch, E]
    if (this.config.featureInput === 'every-step') x = tf.concat([x, features], 1); // [batch, E + F]
    const next = cellStep(this.config.cell, this.params, 'decoder/cell', x, state);
    const logits = tf.add(tf.matMul(next.h, this.p('decoder/output/kernel')), this.p('decoder/output/bias')) as tf.Tensor2D;
    return { logits, state: next };
  }

  /**
   * The training forward pass over whole captions. tokens [batch, steps + 1] are
   * `<start> w1 … wn <end> <pad>…`; step t predicts tokens[:, t + 1] from an input that is the
   * true tokens[:, t] with probability ε (teacher forcing) or else the model's own prediction
   * at step t − 1 (scheduled sampling, Bengio et al. 2015). The first input is always <start>.
   * No gradient flows through the choice: predictions are read back as integer ids.
   *
   * Returns logits [batch, steps, vocab] and the inputs actually fed [batch, steps] (int32).
   */
  forward(images: tf.Tensor4D, tokens: tf.Tensor2D, options: ForwardOptions): { logits: tf.Tensor3D; inputs: tf.Tensor2D } {
    const [batch, width] = tokens.shape;
    const steps = width - 1;
    const epsilon = options.teacherProbability;
    if (epsilon < 1 && !options.rng) throw new Error('forward: scheduled sampling (ε < 1) needs an rng');
    const features = this.encode(images, options.training ?? false);
    const truth = tf.unstack(tf.cast(tokens, 'int32'), 1) as tf.Tensor1D[]; // steps + 1 × [batch]
    let state = this.initialState(features);
    const logits: tf.Tensor2D[] = [];
    const inputs: tf.Tensor1D[] = [];
    for (let t = 0; t < steps; t++) {
      let input = truth[t]!;
      if (t > 0 && epsilon < 1) {
        const rng = options.rng!;
        const previous = logits[t - 1]!;
        // The model's own words are read back as plain ids: a new tensor with no history on
        // the gradient tape, so no gradient can flow through the choice.
        const chosen = options.feed === 'sample' ? sampleCategorical(previous, uniforms(rng, batch)) : tf.argMax(previous, 1);
        const own = tf.tensor1d(chosen.dataSync() as Int32Array, 'int32');
        if (epsilon <= 0) {
          input = own;
        } else {
          const coins = uniforms(rng, batch).map((u) => (u < epsilon ? 1 : 0));
          input = tf.where(tf.tensor1d(coins, 'bool'), input, own);
        }
      }
      inputs.push(input);
      const out = this.step(input, state, features);
      state = out.state;
      logits.push(out.logits);
    }
    return { logits: tf.stack(logits, 1) as tf.Tensor3D, inputs: tf.stack(inputs, 1) as tf.Tensor2D };
  }

  /** Every weight by name, for checkpoints. */
  namedWeights(): Record<string, tf.Variable> {
    return { ...this.encoder.namedWeights(), ...this.params };
  }

  /** The weights that training updates. */
  trainableVariables(): tf.Variable[] {
    return [...this.encoder.trainableVariables(), ...Object.values(this.params)];
  }

  /** Assigns saved weights; every weight must be present with its shape. */
  setWeights(weights: tf.NamedTensorMap, source: string): void {
    const own = this.namedWeights();
    for (const [name, variable] of Object.entries(own)) {
      const value = weights[name];
      if (!value) throw new Error(`${source}: weight "${name}" is missing`);
      if (value.shape.join(',') !== variable.shape.join(',')) {
        throw new Error(`${source}: weight "${name}" has shape [${value.shape}], the model needs [${variable.shape}]`);
      }
      variable.assign(value);
    }
    const extra = Object.keys(weights).filter((n) => !(n in own));
    if (extra.length) throw new Error(`${source}: unexpected weights ${extra.slice(0, 5).join(', ')}`);
  }

  dispose(): void {
    this.encoder.dispose();
    for (const v of Object.values(this.params)) v.dispose();
  }
}
