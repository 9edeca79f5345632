/**
 * The captioning model: the CNN encoder reads an image into a feature vector, the feature sets
 * the decoder's initial state, and a recurrent decoder writes the caption one word at a time.
 * With attention (Xu et al. 2015, "Show, Attend and Tell") the encoder keeps a feature per
 * position of its last map, and at every step the decoder looks at a weighted mix of them.
 * The decoder step is written once (`step`); teacher forcing, scheduled sampling, greedy,
 * beam and sampled decoding all call it.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng.ts';
import { CELL_KINDS, cellStep, cellWeights, createCell, type CellKind, type CellState } from './cells.ts';
import { fusedCellSequence } from './fused-cells.ts';
import { hasFusedCell } from '../runtime/fused.ts';
import { ConfigError, type ConfigSpec } from '../util/config.ts';
import { checkEncoderConfig, Encoder, type EncoderConfig } from './encoder.ts';
import { constant, glorotUniform, uniform } from './init.ts';
import { sampleCategorical, uniforms } from '../decode/sampling.ts';
import { substituteWords } from '../train/substitution.ts';
import { START, UNK, type Vocabulary } from '../text/vocab.ts';

/** Everything that fixes the model's architecture; saved in every checkpoint. */
export interface ModelConfig extends EncoderConfig {
  embeddingSize: number;
  hiddenSize: number;
  cell: CellKind;
  /**
   * Where the image feature enters the decoder: the initial state only, also every step's input,
   * or 'attention': every step's input and output get a context vector, a mix of the grid's
   * features weighted by how well each matches the decoder's state (needs encoderPooling 'grid').
   */
  featureInput: 'init' | 'every-step' | 'attention';
  /**
   * With attention, which state asks where to look for the word a step writes: 'previous-state'
   * (Xu et al. 2015), the state before the step, which has not read the word just written, so
   * the context that names an object's shape is chosen before its colour was said; or
   * 'new-state' (Luong et al. 2015), the state after the step has read that word, so that
   * "red" steers the look to the red object before the shape is read off it. With 'new-state'
   * the context also goes into the next step's input (as 'previous-state' feeds its own), and
   * the initial state carries the first one. Same weights either way. Models saved before this
   * key are 'previous-state'.
   */
  attentionQuery: 'previous-state' | 'new-state';
  /**
   * What each step reads besides the image: 'previous-word', the word before it (the true one
   * in teacher forcing, the model's own when decoding): the autoregressive decoder; or 'none',
   * the same fixed token at every step plus a learned embedding of the step's position, so that
   * each word is predicted from the image and its position alone (a non-autoregressive control:
   * docs/lab.md).
   */
  decoderInput: 'previous-word' | 'none';
  /**
   * How the image becomes the initial state: 'linear', h0 = W_h·feature + b_h (and c0 so for the
   * LSTM), or 'tanh', the same squashed by tanh. With tanh, training soon drives W·feature far
   * into tanh's flat tails, where every image gives the same h0 and no gradient reaches the
   * image again: a decoder with the image in its initial state only then never learns the
   * picture (docs/lab.md). Models saved before this key are 'tanh'.
   */
  initState: 'linear' | 'tanh';
  /** Longest caption, in words (longer training captions are cut). */
  maxLength: number;
  /** Words seen fewer times than this in the training captions become <unk>. */
  minWordCount: number;
}

/** The standard configuration (docs/performance.md; the recipe configs/std.json). */
export const MODEL_DEFAULTS = {
  imageSize: 64,
  encoderChannels: [32, 64, 128, 256],
  featureSize: 256,
  encoderPooling: 'average',
  encoderInput: 'rgb',
  colourStream: 0,
  colourStreamPool: 1,
  backbone: null,
  backboneTrainable: false,
  embeddingSize: 256,
  hiddenSize: 512,
  cell: 'lstm',
  featureInput: 'init',
  attentionQuery: 'previous-state',
  decoderInput: 'previous-word',
  initState: 'linear',
  maxLength: 16,
  minWordCount: 5,
} satisfies ModelConfig;

export const MODEL_SPEC: ConfigSpec<ModelConfig> = {
  imageSize: { type: 'number', integer: true, min: 8, describe: 'input image side in pixels' },
  encoderChannels: {
    type: 'number[]',
    integer: true,
    min: 1,
    describe: 'channels of each conv block (comma-separated)',
  },
  featureSize: { type: 'number', integer: true, min: 1, describe: 'image feature size' },
  encoderPooling: {
    type: 'string',
    choices: ['average', 'flatten', 'grid'],
    describe:
      "last feature map to vector: global average, flattened (keeps where things are), or a vector per position ('grid', for attention)",
  },
  encoderInput: {
    type: 'string',
    choices: ['rgb', 'chroma'],
    describe:
      "what the CNN reads: the RGB image, or 'chroma' (per pixel max − min of R, G, B: outlines without hue, so shapes cannot be read off colours)",
  },
  colourStream: {
    type: 'number',
    integer: true,
    min: 0,
    describe: 'width of a per-pixel colour stream (1×1 layers, pooled to the grid) beside the CNN; 0 for none',
  },
  colourStreamPool: {
    type: 'number',
    integer: true,
    min: 1,
    describe:
      'side of the squares of pixels the colour stream reads averaged into one (1: every pixel; 2: 2×2 squares, a quarter of the work)',
  },
  backbone: { type: 'string', nullable: true, describe: 'path of a TF.js LayersModel to use as the CNN backbone' },
  backboneTrainable: { type: 'boolean', describe: 'fine-tune the backbone (else frozen)' },
  embeddingSize: { type: 'number', integer: true, min: 1, describe: 'word embedding size' },
  hiddenSize: { type: 'number', integer: true, min: 1, describe: 'recurrent units' },
  cell: {
    type: 'string',
    choices: CELL_KINDS,
    describe: 'recurrent cell: LSTM, GRU, Elman RNN (tanh) or IRNN (ReLU, recurrent weights starting as the identity)',
  },
  featureInput: {
    type: 'string',
    choices: ['init', 'every-step', 'attention'],
    describe:
      'image feature enters the initial state only, every step too, or every step through attention over the grid',
  },
  attentionQuery: {
    type: 'string',
    choices: ['previous-state', 'new-state'],
    describe:
      "with attention, the state that chooses where to look: the one before the step (Xu et al.), or 'new-state', the one after it read the word just written (Luong et al.)",
  },
  decoderInput: {
    type: 'string',
    choices: ['previous-word', 'none'],
    describe:
      "each step's input: the previous word (autoregressive), or 'none': a fixed token plus the step's position (a non-autoregressive control)",
  },
  initState: {
    type: 'string',
    choices: ['linear', 'tanh'],
    describe:
      'initial state from the image feature: linear, or squashed by tanh (saturates; models saved before this option)',
  },
  maxLength: { type: 'number', integer: true, min: 1, describe: 'longest caption in words' },
  minWordCount: { type: 'number', integer: true, min: 1, describe: 'minimum count for a word to enter the vocabulary' },
};

export const MODEL_KEYS = Object.keys(MODEL_SPEC) as (keyof ModelConfig)[];

/**
 * Attention reads a grid, and a grid is only of use to attention: the two keys go together; the encoder's
 * own checks (checkEncoderConfig) run too.
 */
export function checkModelConfig(config: ModelConfig): void {
  if ((config.featureInput === 'attention') !== (config.encoderPooling === 'grid')) {
    throw new ConfigError(
      `featureInput "${config.featureInput}" with encoderPooling "${config.encoderPooling}": featureInput "attention" needs encoderPooling "grid" (the map it attends over), and "grid" needs "attention"`,
    );
  }
  checkEncoderConfig(config);
}

/**
 * What the encoder hands the decoder: [batch, featureSize], or with attention one feature per
 * grid position, [batch, positions, featureSize]. Decoding treats it as opaque rows.
 */
export type ImageFeatures = tf.Tensor2D | tf.Tensor3D;

/**
 * The decoder's state between steps: the cell's (h, and the LSTM's c, [batch, H] each); with
 * decoderInput 'none', the position of the step to come, [batch] int32; with attentionQuery
 * 'new-state', the context the last step read, [batch, featureSize], the next step's input.
 * Searches gather and dispose every tensor of it row by row (model/decode/search-state.ts).
 */
export type DecoderState = CellState & { position?: tf.Tensor1D; context?: tf.Tensor2D };

/** A step's output: logits [batch, vocab] over the next word, and the new recurrent state. */
export interface StepOutput {
  logits: tf.Tensor2D;
  state: DecoderState;
  /**
   * With featureInput 'attention': the weights this step gave each grid position, [batch,
   * positions], each row a softmax (summing to 1); the context it read is their mix of the
   * grid's features. Absent for the other feature inputs.
   */
  attention?: tf.Tensor2D;
}

/** How the training forward pass chooses each step's input (Bengio et al. 2015). */
export interface ForwardOptions {
  /** ε: probability that a step's input is the true previous word; 1 is teacher forcing. */
  teacherProbability: number;
  /** The model's own previous word: its argmax, or a sample from its distribution. */
  feed: 'argmax' | 'sample';
  /**
   * Scheduled sampling within slots: each word id's substitutes (model/train/substitution.ts). When
   * given, the model's own word is fed only where it is the true word or one of its
   * substitutes; elsewhere the true word is fed. The targets stay the reference's words, so an
   * own word that changes the sentence's structure ("is" where the reference goes on "on the
   * left of") would teach a wrong continuation ("is the left of"); one that fills the same slot
   * ("blue" for "red") keeps the targets right.
   */
  samplingSlots?: readonly (readonly number[])[];
  /**
   * Word dropout (Bowman et al. 2016): each input after <start> is replaced by <unk> with this
   * probability, so the next word must often be read off the image and the state rather than
   * off the word just fed. 0 (the default) never replaces.
   */
  wordDropout?: number;
  /**
   * Word substitution (model/train/substitution.ts): each input after <start> that has substitutes
   * in `classes` (indexed by word id) is replaced by one of them with probability `rate` (one
   * number, or one per word id), after scheduled sampling has chosen it and before word dropout.
   * Off when absent or 0.
   */
  substitution?: { classes: readonly (readonly number[])[]; rate: number | readonly number[] };
  /** Draws the coin flips (and samples); required when ε < 1 or word substitution or dropout is on. */
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
    checkModelConfig(config);
    const rng = new Rng(seed);
    const encoder = await Encoder.create(config, rng);
    return new Captioner(config, vocab, encoder, Captioner.decoderParams(config, vocab, rng, encoder.positions));
  }

  /** A model of the saved architecture, with the saved weights. */
  static async restore(
    config: ModelConfig,
    vocab: Vocabulary,
    weights: tf.NamedTensorMap,
    backboneTopology: object | null,
  ): Promise<Captioner> {
    checkModelConfig(config);
    const rng = new Rng(0);
    const encoder = await Encoder.fromTopology(config, backboneTopology, rng);
    const model = new Captioner(config, vocab, encoder, Captioner.decoderParams(config, vocab, rng, encoder.positions));
    model.setWeights(weights, 'checkpoint');
    return model;
  }

  /** `positions`: grid positions of an attending model's features (1 without attention). */
  private static decoderParams(
    config: ModelConfig,
    vocab: Vocabulary,
    rng: Rng,
    positions: number,
  ): Record<string, tf.Variable> {
    const { embeddingSize: E, hiddenSize: H, featureSize: F } = config;
    const V = vocab.size;
    const attention = config.featureInput === 'attention';
    const inputSize = config.featureInput === 'init' ? E : E + F;
    // The initial state reads the whole grid, flattened, so that it knows where everything is
    // before the first word; the output reads the state and, with attention, the context.
    const initIn = positions * F;
    const outIn = attention ? H + F : H;
    const p: Record<string, tf.Variable> = {
      'decoder/embedding': uniform(rng, [V, E], 0.1),
      'decoder/init_h/kernel': glorotUniform(rng, [initIn, H], initIn, H),
      'decoder/init_h/bias': constant([H], 0),
      ...createCell(config.cell, rng, inputSize, H, 'decoder/cell'),
      'decoder/output/kernel': glorotUniform(rng, [outIn, V], outIn, V),
      'decoder/output/bias': constant([V], 0),
    };
    if (config.cell === 'lstm') {
      p['decoder/init_c/kernel'] = glorotUniform(rng, [initIn, H], initIn, H);
      p['decoder/init_c/bias'] = constant([H], 0);
    }
    if (attention) p['decoder/attention/query'] = glorotUniform(rng, [H, F], H, F);
    // Positions 0 … maxLength: the steps of the longest caption and its <end>.
    if (config.decoderInput === 'none') p['decoder/position'] = uniform(rng, [config.maxLength + 1, E], 0.1);
    return p;
  }

  /**
   * With featureInput 'attention': the [rows, columns] of the grid a step's `attention` weights
   * are over (row-major), so that they can be drawn on the image; else null.
   */
  get attentionGrid(): [number, number] | null {
    return this.config.featureInput === 'attention' ? this.encoder.grid : null;
  }

  /** Attention asked by the state after the step has read its word (attentionQuery 'new-state'). */
  private get looksAfterReading(): boolean {
    return this.config.featureInput === 'attention' && this.config.attentionQuery === 'new-state';
  }

  private p(name: string): tf.Variable {
    const v = this.params[name];
    if (!v) throw new Error(`missing parameter ${name}`);
    return v;
  }

  /** images [batch, size, size, 3] in [0, 1] → features [batch, featureSize] (or [batch, positions, featureSize]). */
  encode(images: tf.Tensor4D, training = false): ImageFeatures {
    return this.encoder.apply(images, training);
  }

  /**
   * h0 = W_h·feature + b_h and, for the LSTM, c0 = W_c·feature + b_c, each through tanh when
   * initState is 'tanh'; a grid is read flattened. With decoderInput 'none' the state also holds
   * position 0 per row.
   * `probe` as in `step`: added to h0 (and c0) before anything reads them, the first look included.
   */
  initialState(features: ImageFeatures, probe?: CellState): DecoderState {
    const flat =
      features.rank === 3 ? (tf.reshape(features, [features.shape[0], -1]) as tf.Tensor2D) : (features as tf.Tensor2D);
    const dense = (name: string) => {
      const z = tf.add(tf.matMul(flat, this.p(`${name}/kernel`)), this.p(`${name}/bias`)) as tf.Tensor2D;
      return this.config.initState === 'tanh' ? tf.tanh(z) : z;
    };
    const cell: CellState =
      this.config.cell === 'lstm'
        ? { h: dense('decoder/init_h'), c: dense('decoder/init_c') }
        : { h: dense('decoder/init_h') };
    const state: DecoderState = probe ? addProbe(cell, probe) : cell;
    if (this.config.decoderInput === 'none') state.position = tf.zeros([flat.shape[0]], 'int32') as tf.Tensor1D;
    if (this.looksAfterReading) state.context = this.attend(state.h, features as tf.Tensor3D).context;
    return state;
  }

  /**
   * The step's input word vector [batch, E]: the previous word's embedding or, with
   * decoderInput 'none', <start>'s embedding plus the learned embedding of the step's position
   * (a position past the table, when decoding runs longer than maxLength, reads its last row).
   */
  private inputVector(prevTokens: tf.Tensor1D, state: DecoderState): tf.Tensor2D {
    const embedding = this.p('decoder/embedding');
    if (this.config.decoderInput !== 'none') return tf.gather(embedding, prevTokens) as tf.Tensor2D;
    if (!state.position) throw new Error('step: decoderInput "none" needs the position in the state (initialState)');
    const start = tf.gather(embedding, tf.fill([prevTokens.shape[0]], START, 'int32')); // [batch, E]
    const position = tf.gather(
      this.p('decoder/position'),
      tf.minimum(state.position, tf.scalar(this.config.maxLength, 'int32')),
    );
    return tf.add(start, position) as tf.Tensor2D;
  }

  /**
   * Soft attention (Xu et al. 2015, with scaled dot-product scores as in Vaswani et al. 2017):
   * the previous state asks a query q = h·W_q; each grid position scores q·feature / √F, a
   * softmax over positions turns scores into weights, and the context is the weighted sum of
   * the features. grid [batch, positions, F] → context [batch, F] and weights [batch, positions].
   */
  private attend(h: tf.Tensor2D, grid: tf.Tensor3D): { context: tf.Tensor2D; weights: tf.Tensor2D } {
    const [batch, , F] = grid.shape;
    const query = tf.reshape(tf.matMul(h, this.p('decoder/attention/query')), [batch, F, 1]) as tf.Tensor3D;
    // [batch, positions]
    const scores = tf.mul(tf.reshape(tf.matMul(grid, query), [batch, -1]), 1 / Math.sqrt(F)) as tf.Tensor2D;
    const weights = tf.softmax(scores); // [batch, positions]
    const mix = tf.reshape(weights, [batch, 1, -1]) as tf.Tensor3D; // [batch, 1, positions]
    return { context: tf.reshape(tf.matMul(mix, grid), [batch, F]) as tf.Tensor2D, weights };
  }

  /**
   * The decoder step, written once: previous words [batch] (int32), the state, and the image
   * features [batch, featureSize] (or the grid [batch, positions, featureSize]) → logits
   * [batch, vocab] over the next word and the new state; with attention also the weights the
   * step gave each grid position, [batch, positions].
   *
   * `probe` (for measuring gradient flow, model/train/gradient-flow.ts): tensors of the state's
   * shapes added to the new h (and c) before anything reads them; zeros leave every value as it
   * was, and the gradient of a loss with respect to them is its gradient at the new state.
   */
  step(prevTokens: tf.Tensor1D, state: DecoderState, features: ImageFeatures, probe?: CellState): StepOutput {
    let x = this.inputVector(prevTokens, state); // [batch, E]
    const grid = features as tf.Tensor3D;
    const after = this.looksAfterReading;
    if (after && !state.context)
      throw new Error('step: attentionQuery "new-state" needs the context in the state (initialState)');
    // 'previous-state' looks now, with the state before this step; 'new-state' looked last step
    const before = this.config.featureInput === 'attention' && !after ? this.attend(state.h, grid) : null;
    const input = after ? state.context! : before?.context;
    if (input)
      x = tf.concat([x, input], 1); // [batch, E + F]
    else if (this.config.featureInput === 'every-step') x = tf.concat([x, features as tf.Tensor2D], 1); // [batch, E + F]
    let cell = cellStep(this.config.cell, this.params, 'decoder/cell', x, state);
    if (probe) cell = addProbe(cell, probe);
    // with 'new-state' the state that has read this step's word looks, and the next step reads that look
    const attended = after ? this.attend(cell.h, grid) : before;
    const next: DecoderState = state.position
      ? { ...cell, position: tf.add(state.position, tf.scalar(1, 'int32')) as tf.Tensor1D }
      : { ...cell };
    if (after) next.context = attended!.context;
    const context = attended?.context ?? null;
    // the word is read off the state and, with attention, what it looked at
    const readout = context ? tf.concat([next.h, context], 1) : next.h;
    const logits = tf.add(
      tf.matMul(readout, this.p('decoder/output/kernel')),
      this.p('decoder/output/bias'),
    ) as tf.Tensor2D;
    return attended ? { logits, state: next, attention: attended.weights } : { logits, state: next };
  }

  /**
   * The training forward pass over whole captions. tokens [batch, steps + 1] are
   * `<start> w1 … wn <end> <pad>…`; step t predicts tokens[:, t + 1] from an input that is the
   * true tokens[:, t] with probability ε (teacher forcing) or else the model's own prediction
   * at step t − 1 (scheduled sampling, Bengio et al. 2015). The first input is always <start>.
   * No gradient flows through the choice: predictions are read back as integer ids; with
   * `samplingSlots` an own word outside the true word's slot is not fed. With word
   * substitution the chosen input may then be swapped for a word of the same slot, and with
   * word dropout replaced by <unk> with probability `wordDropout`. With decoderInput 'none' no
   * step reads its input word, so none of that is done: every input is <start>.
   *
   * Returns logits [batch, steps, vocab] and the inputs actually fed [batch, steps] (int32).
   */
  forward(
    images: tf.Tensor4D,
    tokens: tf.Tensor2D,
    options: ForwardOptions,
  ): { logits: tf.Tensor3D; inputs: tf.Tensor2D } {
    const [batch, width] = tokens.shape;
    const steps = width - 1;
    const wordFed = this.config.decoderInput !== 'none';
    const epsilon = wordFed ? options.teacherProbability : 1;
    const dropout = wordFed ? (options.wordDropout ?? 0) : 0;
    const rate = wordFed ? (options.substitution?.rate ?? 0) : 0;
    const substitution = (typeof rate === 'number' ? rate > 0 : rate.some((r) => r > 0)) ? options.substitution! : null;
    if ((epsilon < 1 || dropout > 0 || substitution) && !options.rng)
      throw new Error('forward: scheduled sampling (ε < 1), word substitution and word dropout need an rng');
    const features = this.encode(images, options.training ?? false);
    if (epsilon >= 1 && dropout <= 0 && !substitution) {
      const whole = this.teacherForced(features, tokens);
      if (whole) return whole;
    }
    const truth = tf.unstack(tf.cast(tokens, 'int32'), 1) as tf.Tensor1D[]; // steps + 1 × [batch]
    let state = this.initialState(features);
    const logits: tf.Tensor2D[] = [];
    const inputs: tf.Tensor1D[] = [];
    for (let t = 0; t < steps; t++) {
      let input = wordFed ? truth[t]! : truth[0]!; // without words fed, <start> stands for every input
      if (t > 0 && epsilon < 1) {
        const rng = options.rng!;
        const previous = logits[t - 1]!;
        // The model's own words are read back as plain ids: a new tensor with no history on
        // the gradient tape, so no gradient can flow through the choice.
        const chosen =
          options.feed === 'sample' ? sampleCategorical(previous, uniforms(rng, batch)) : tf.argMax(previous, 1);
        let ownIds = chosen.dataSync() as Int32Array;
        if (options.samplingSlots) ownIds = withinSlots(ownIds, input.dataSync(), options.samplingSlots);
        const own = tf.tensor1d(ownIds, 'int32');
        if (epsilon <= 0) {
          input = own;
        } else {
          const coins = uniforms(rng, batch).map((u) => (u < epsilon ? 1 : 0));
          input = tf.where(tf.tensor1d(coins, 'bool'), input, own);
        }
      }
      if (t > 0 && substitution) {
        const rng = options.rng!;
        input = tf.tensor1d(
          substituteWords(
            input.dataSync(),
            substitution.classes,
            substitution.rate,
            uniforms(rng, batch),
            uniforms(rng, batch),
          ),
          'int32',
        );
      }
      if (t > 0 && dropout > 0) {
        const dropped = uniforms(options.rng!, batch).map((u) => (u < dropout ? 1 : 0));
        input = tf.where(tf.tensor1d(dropped, 'bool'), tf.fill([batch], UNK, 'int32'), input) as tf.Tensor1D;
      }
      inputs.push(input);
      const out = this.step(input, state, features);
      state = out.state;
      logits.push(out.logits);
    }
    return { logits: tf.stack(logits, 1) as tf.Tensor3D, inputs: tf.stack(inputs, 1) as tf.Tensor2D };
  }

  /**
   * Teacher forcing over whole captions at once, when every input is the true previous word and
   * the cell has fused kernels (model/nn/fused-cells.ts): the embeddings and input projections
   * of all steps, the recurrence, and the output layer over all steps are each one kernel, as
   * PyTorch's nn.LSTM runs a sequence. It computes what calling `step` at every step computes
   * (test/model/runtime/fused.test.ts compares the two, logits and gradients); attention and
   * 'every-step' inputs, whose inputs depend on the step, and decoderInput 'none' (position
   * embeddings, not words) take the step-by-step path. Returns
   * null when it does not apply.
   */
  private teacherForced(
    features: ImageFeatures,
    tokens: tf.Tensor2D,
  ): { logits: tf.Tensor3D; inputs: tf.Tensor2D } | null {
    if (this.config.featureInput !== 'init' || this.config.decoderInput === 'none' || !hasFusedCell(this.config.cell))
      return null;
    const [batch, width] = tokens.shape;
    const steps = width - 1;
    const inputs = tf.slice(tf.cast(tokens, 'int32'), [0, 0], [batch, steps]) as tf.Tensor2D; // [batch, steps]
    const xs = tf.gather(this.p('decoder/embedding'), inputs) as tf.Tensor3D; // [batch, steps, E]
    const hs = fusedCellSequence(
      this.config.cell,
      cellWeights(this.params, 'decoder/cell'),
      xs,
      this.initialState(features),
    );
    if (!hs) return null;
    const H = this.config.hiddenSize;
    const logits = tf.fused.matMul({
      a: tf.reshape(hs, [batch * steps, H]),
      b: this.p('decoder/output/kernel'),
      bias: this.p('decoder/output/bias'),
    }); // [batch·steps, vocab]
    return { logits: tf.reshape(logits, [batch, steps, -1]) as tf.Tensor3D, inputs };
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

/** The state plus the probe's tensors (h, and c where both have one). */
export function addProbe(state: CellState, probe: CellState): CellState {
  const probed: CellState = { h: tf.add(state.h, probe.h) as tf.Tensor2D };
  if (state.c) probed.c = probe.c ? (tf.add(state.c, probe.c) as tf.Tensor2D) : state.c;
  return probed;
}

/** `own` where each id is the true id or one of its substitutes in `slots`; else the true id. */
function withinSlots(
  own: ArrayLike<number>,
  truth: ArrayLike<number>,
  slots: readonly (readonly number[])[],
): Int32Array {
  return Int32Array.from(own, (id, b) => (id === truth[b] || slots[truth[b]!]?.includes(id) ? id : truth[b]!));
}
