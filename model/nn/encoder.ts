/**
 * The image encoder: a small CNN (blocks of 3×3 convolution, ReLU and 2×2 max-pooling, then
 * pooling and a dense layer) that turns an image into one feature vector, or (pooling 'grid')
 * into one feature vector per position of its last map, for a decoder that attends. A
 * pretrained TF.js LayersModel can stand in for the convolutional part ("backbone"), frozen or
 * fine-tuned; the dense projection to the feature size is always trained.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.ts';
import { constant, glorotUniform } from './init.ts';
import { loadLayersModelFromPath } from '../io/layers-io.ts';
import { ConfigError } from '../util/config.ts';
import { convReluMaxPool } from '../runtime/fused.ts';

export interface EncoderConfig {
  /** Side of the square input image, in pixels. */
  imageSize: number;
  /** Output channels of each conv block; each block halves the resolution. */
  encoderChannels: number[];
  /** Size of the image feature vector handed to the decoder. */
  featureSize: number;
  /**
   * How the last feature map becomes a vector: 'average' (global average pooling: what is in
   * the image, wherever it is) or 'flatten' (every position kept: also where things are, which
   * relations such as "left of" need, and which object each attribute belongs to) or 'grid'
   * (no pooling: a feature per position, [batch, h·w, featureSize], each projected by the same
   * dense layer and tagged with a learned embedding of its position, for an attention decoder).
   */
  encoderPooling: 'average' | 'flatten' | 'grid';
  /**
   * What the CNN reads: 'rgb', the image; or 'chroma', one channel per pixel saying how far its
   * colour is from grey (the largest of R, G, B less the smallest), the same for every hue. A CNN
   * on chroma sees outlines but cannot tell a blue shape from a yellow one, so it cannot learn
   * to read a shape off its colour: the shortcut the shapes benchmark's held-out pairs punish
   * (docs/experiments/default-model-v2.md). Colour then comes from `colourStream`.
   */
  encoderInput: 'rgb' | 'chroma';
  /**
   * Width of a colour stream beside the CNN, or 0 for none: two dense layers (ReLU between them)
   * applied to each pixel's RGB on its own (1×1 convolutions), max-pooled to the CNN's last map and
   * concatenated to it before pooling and projection. Seeing one pixel at a time, it tells
   * colours and never shapes.
   */
  colourStream: number;
  /**
   * Side of the squares of pixels the colour stream reads averaged into one: 1, every pixel; 2,
   * each 2×2 square (a quarter of the stream's work; an object's inside keeps its colour); any
   * power of two up to the CNN's cell.
   */
  colourStreamPool: number;
  /** Path of a TF.js LayersModel to use instead of the CNN, or null. */
  backbone: string | null;
  /** Fine-tune the backbone's weights (true) or keep them frozen (false). */
  backboneTrainable: boolean;
}

type Params = Record<string, tf.Variable>;

/**
 * One block of the CNN: 3×3 convolution (padding same), bias, ReLU, 2×2 max-pooling (stride 2,
 * padding same). One fused kernel forward and backward when the native kernels are on
 * (model/runtime/fused.ts), else the TF.js ops.
 */
function convBlock(x: tf.Tensor4D, kernel: tf.Tensor4D, bias: tf.Tensor1D): tf.Tensor4D {
  const fused = convReluMaxPool(x, kernel, bias, {
    strides: 1,
    pad: 'same',
    poolSize: 2,
    poolStrides: 2,
    poolPad: 'same',
  });
  if (fused) return fused;
  const y = tf.relu(tf.add(tf.conv2d(x, kernel, 1, 'same'), bias)) as tf.Tensor4D; // [batch, s, s, ch]
  return tf.maxPool(y, 2, 2, 'same'); // [batch, s/2, s/2, ch]
}

/** A backbone reads RGB and brings its own features: no chroma input, no colour stream. */
export function checkEncoderConfig(config: EncoderConfig): void {
  if (config.backbone && (config.encoderInput !== 'rgb' || config.colourStream > 0)) {
    throw new ConfigError(
      `encoderInput "${config.encoderInput}" and colourStream ${config.colourStream} with backbone ${config.backbone}: the chroma input and the colour stream are for the built-in CNN`,
    );
  }
  const pool = config.colourStreamPool;
  const cell = 2 ** config.encoderChannels.length;
  if (!Number.isInteger(Math.log2(pool)) || pool > cell) {
    throw new ConfigError(
      `colourStreamPool ${pool}: must be a power of two no larger than the CNN's cell (${cell} pixels for ${config.encoderChannels.length} blocks)`,
    );
  }
}

/** Channels of what the CNN reads: the image's 3, or chroma's 1. */
function inputChannels(config: EncoderConfig): number {
  return config.encoderInput === 'chroma' ? 1 : 3;
}

/** [batch, s, s, 3] RGB → [batch, s, s, 1]: each pixel's max(R, G, B) − min(R, G, B), blind to hue. */
export function chroma(images: tf.Tensor4D): tf.Tensor4D {
  return tf.sub(tf.max(images, 3, true), tf.min(images, 3, true));
}

export class Encoder {
  private constructor(
    readonly config: EncoderConfig,
    private readonly params: Params,
    private readonly backboneModel: tf.LayersModel | null,
    /** The backbone's topology, saved with the checkpoint so that a model directory stands alone. */
    readonly backboneTopology: object | null,
  ) {}

  /** A new encoder with fresh weights (the backbone's come from its own file). */
  static async create(config: EncoderConfig, rng: Rng): Promise<Encoder> {
    let backbone: tf.LayersModel | null = null;
    let topology: object | null = null;
    let convOut: number;
    checkEncoderConfig(config);
    if (config.backbone) {
      backbone = await loadLayersModelFromPath(config.backbone);
      topology = backbone.toJSON(null, false) as object;
      convOut = Encoder.checkBackbone(backbone, config, config.backbone);
    } else {
      convOut = Encoder.cnnOutputSize(config);
    }
    const params: Params = {};
    if (!backbone) {
      let inChannels = inputChannels(config);
      config.encoderChannels.forEach((out, i) => {
        const name = `encoder/conv${i}`;
        params[`${name}/kernel`] = glorotUniform(rng, [3, 3, inChannels, out], 9 * inChannels, 9 * out);
        params[`${name}/bias`] = constant([out], 0);
        inChannels = out;
      });
    }
    const colour = config.colourStream;
    if (colour > 0) {
      params['encoder/colour0/kernel'] = glorotUniform(rng, [3, colour], 3, colour);
      params['encoder/colour0/bias'] = constant([colour], 0);
      params['encoder/colour1/kernel'] = glorotUniform(rng, [colour, colour], colour, colour);
      params['encoder/colour1/bias'] = constant([colour], 0);
    }
    Object.assign(params, Encoder.projection(config, convOut, rng, backbone?.outputs[0]?.shape));
    return new Encoder(config, params, backbone, topology);
  }

  /** An encoder with the architecture of `config` whose weights will be set by `setWeights`. */
  static async fromTopology(config: EncoderConfig, backboneTopology: object | null, rng: Rng): Promise<Encoder> {
    if (!backboneTopology) return Encoder.create({ ...config, backbone: null }, rng);
    const backbone = (await tf.models.modelFromJSON({
      modelTopology: backboneTopology,
    } as tf.io.ModelJSON)) as tf.LayersModel;
    const convOut = Encoder.checkBackbone(backbone, config, 'the saved backbone');
    const params = Encoder.projection(config, convOut, rng, backbone.outputs[0]?.shape);
    return new Encoder(config, params, backbone, backboneTopology);
  }

  /** The dense projection to the feature size and, for a grid, the position embedding. */
  private static projection(
    config: EncoderConfig,
    convOut: number,
    rng: Rng,
    backboneOutput?: (number | null)[],
  ): Params {
    const params: Params = {
      'encoder/project/kernel': glorotUniform(rng, [convOut, config.featureSize], convOut, config.featureSize),
      'encoder/project/bias': constant([config.featureSize], 0),
    };
    if (config.encoderPooling === 'grid') {
      const positions = Encoder.gridPositions(config, backboneOutput);
      params['encoder/position'] = glorotUniform(rng, [positions, config.featureSize], positions, config.featureSize);
    }
    return params;
  }

  /** Positions of the last feature map (h·w): what a 'grid' encoder returns one feature for. */
  private static gridPositions(config: EncoderConfig, backboneOutput?: (number | null)[]): number {
    if (backboneOutput) {
      const [, h, w] = backboneOutput;
      if (backboneOutput.length !== 4 || typeof h !== 'number' || typeof w !== 'number') {
        throw new Error(
          `backbone output shape ${JSON.stringify(backboneOutput)} has no fixed [h, w] grid (encoderPooling 'grid' needs one)`,
        );
      }
      return h * w;
    }
    // 'same' max-pooling rounds up: 64 → 32 → … ; 10 → 5 → 3.
    const side = config.encoderChannels.reduce((s) => Math.ceil(s / 2), config.imageSize);
    return side * side;
  }

  /** Length of the CNN's output vector (with the colour stream's): channels, times positions when flattened. */
  private static cnnOutputSize(config: EncoderConfig): number {
    const channels = (config.encoderChannels.at(-1) ?? inputChannels(config)) + config.colourStream;
    if (config.encoderPooling !== 'flatten') return channels; // averaged, or projected per position
    return Encoder.gridPositions(config) * channels;
  }

  /** Checks the backbone takes [imageSize, imageSize, 3] images; returns the length of its pooled output. */
  private static checkBackbone(model: tf.LayersModel, config: EncoderConfig, source: string): number {
    const input = model.inputs[0]?.shape ?? [];
    if (input.length !== 4 || input[1] !== config.imageSize || input[2] !== config.imageSize || input[3] !== 3) {
      throw new Error(
        `${source}: backbone input shape is ${JSON.stringify(input)}, expected [null, ${config.imageSize}, ${config.imageSize}, 3] (set imageSize to match)`,
      );
    }
    const output = model.outputs[0]?.shape ?? [];
    const channels = output.at(-1);
    if ((output.length !== 2 && output.length !== 4) || typeof channels !== 'number') {
      throw new Error(
        `${source}: backbone output shape ${JSON.stringify(output)} is neither [batch, channels] nor [batch, h, w, channels]`,
      );
    }
    if (output.length === 4 && config.encoderPooling === 'flatten') {
      const [, h, w] = output;
      if (typeof h !== 'number' || typeof w !== 'number')
        throw new Error(`${source}: backbone output shape ${JSON.stringify(output)} has no fixed size to flatten`);
      return h * w * channels;
    }
    return channels;
  }

  /**
   * images [batch, size, size, 3] in [0, 1] → features [batch, featureSize], or for pooling
   * 'grid' [batch, positions, featureSize].
   * `training` matters only to a backbone with dropout or batch normalisation.
   */
  apply(images: tf.Tensor4D, training = false): tf.Tensor2D | tf.Tensor3D {
    return tf.tidy(() => {
      let x: tf.Tensor = this.convMaps(images, training).at(-1)!;
      if (this.config.colourStream > 0) x = tf.concat([x, this.colourMap(images)], 3);
      const project = (v: tf.Tensor2D) =>
        tf.add(
          tf.matMul(v, this.params['encoder/project/kernel']!),
          this.params['encoder/project/bias']!,
        ) as tf.Tensor2D;
      if (this.config.encoderPooling === 'grid') {
        if (x.rank !== 4)
          throw new Error(`encoderPooling 'grid' needs a [batch, h, w, channels] map, got rank ${x.rank}`);
        const [batch, h, w, channels] = x.shape as number[];
        const perPosition = project(tf.reshape(x, [batch! * h! * w!, channels!])); // one dense layer for every position
        return tf.add(
          tf.reshape(perPosition, [batch!, h! * w!, this.config.featureSize]),
          this.params['encoder/position']!,
        ) as tf.Tensor3D;
      }
      if (x.rank === 4) {
        x =
          this.config.encoderPooling === 'flatten'
            ? tf.reshape(x, [x.shape[0]!, -1]) // [batch, h·w·channels]
            : tf.mean(x, [1, 2]); // global average pooling → [batch, channels]
      }
      return project(x as tf.Tensor2D);
    });
  }

  /**
   * The grid's [rows, columns] for pooling 'grid' (positions are row-major over it, as the last
   * feature map's h × w), else null.
   */
  get grid(): [number, number] | null {
    if (this.config.encoderPooling !== 'grid') return null;
    const shape = this.backboneModel?.outputs[0]?.shape;
    if (shape) return [shape[1]!, shape[2]!];
    const side = Math.round(Math.sqrt(this.positions));
    return [side, side];
  }

  /**
   * The convolutional part's maps, before pooling and projection: each conv block's output
   * [batch, s/2ᵏ, s/2ᵏ, channels], first to last (only the first `blocks`, when given), or a
   * backbone's one output. The last is what
   * `apply` pools and projects; the earlier ones are for reading what each block saw
   * (model/familiarity/features.ts). Call it inside `tf.tidy`: the steps between the maps are not freed here.
   */
  convMaps(images: tf.Tensor4D, training = false, blocks = Infinity): tf.Tensor[] {
    if (this.backboneModel)
      return [this.backboneModel.apply(images, { training: training && this.config.backboneTrainable }) as tf.Tensor];
    const maps: tf.Tensor4D[] = [];
    let x = this.config.encoderInput === 'chroma' ? chroma(images) : images;
    for (let i = 0; i < Math.min(blocks, this.config.encoderChannels.length); i++) {
      const kernel = this.params[`encoder/conv${i}/kernel`] as tf.Tensor4D;
      const bias = this.params[`encoder/conv${i}/bias`] as tf.Tensor1D;
      x = convBlock(x, kernel, bias); // [batch, s/2, s/2, ch]
      maps.push(x);
    }
    return maps.length ? maps : [x];
  }

  /**
   * The colour stream: each pixel's RGB through two dense layers (ReLU between), then max-pooled over
   * each cell of the CNN's last map → [batch, h, w, colourStream].
   */
  private colourMap(images: tf.Tensor4D): tf.Tensor4D {
    const dense = (x: tf.Tensor2D, k: number) =>
      tf.add(tf.matMul(x, this.params[`encoder/colour${k}/kernel`]!), this.params[`encoder/colour${k}/bias`]!);
    // 2×2 at a time, as the CNN's blocks halve the side (rounding up): the cells are the CNN's
    // own, also for a side that is not a power of two (one 2ᵏ window would pad it differently).
    // The first log₂(colourStreamPool) halvings average the pixels before the stream reads them.
    const averaged = Math.log2(this.config.colourStreamPool);
    let input = images;
    for (let i = 0; i < averaged; i++) input = tf.avgPool(input, 2, 2, 'same');
    const [batch, side] = input.shape;
    // The second layer is linear: with ReLU after both, a colour that leaves every unit of the
    // second at zero gets no gradient there and is never learnt; the max-pooling is nonlinear enough.
    const hidden = tf.relu(dense(tf.reshape(input, [batch * side * side, 3]), 0)) as tf.Tensor2D;
    const pixels = dense(hidden, 1);
    let map = tf.reshape(pixels, [batch, side, side, this.config.colourStream]) as tf.Tensor4D;
    for (let i = averaged; i < this.config.encoderChannels.length; i++) map = tf.maxPool(map, 2, 2, 'same');
    return map;
  }

  /** Positions per image in the features: the grid's h·w for pooling 'grid', else 1. */
  get positions(): number {
    return this.config.encoderPooling === 'grid' ? this.params['encoder/position']!.shape[0]! : 1;
  }

  /** Every weight, by a stable name (backbone weights by position, as `backbone/<i>`). */
  namedWeights(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = { ...this.params };
    this.backboneModel?.weights.forEach((w, i) => {
      out[`encoder/backbone/${i}`] = w.read() as tf.Variable;
    });
    return out;
  }

  /** The weights that training updates: all of them, less a frozen backbone's. */
  trainableVariables(): tf.Variable[] {
    const own = Object.values(this.params);
    if (!this.backboneModel || !this.config.backboneTrainable) return own;
    return [...own, ...this.backboneModel.trainableWeights.map((w) => w.read() as tf.Variable)];
  }

  dispose(): void {
    for (const v of Object.values(this.params)) v.dispose();
    this.backboneModel?.dispose();
  }
}
