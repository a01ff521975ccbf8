// Every JSON a command prints uses snake_case field names; data keys (dtype names) are left alone.
import { jsonText, snakeCase } from '../../src/cli/render/json';

describe('snake_case JSON output', () => {
  test.each([
    ['kvSource', 'kv_source'],
    ['effectiveParamsB', 'effective_params_b'],
    ['onlyA', 'only_a'],
    ['pValue', 'p_value'],
    ['numAttentionHeads', 'num_attention_heads'],
    ['skip', 'skip'],
    ['already_snake', 'already_snake'],
    ['BF16', 'BF16'],
    ['model.language_model.norm.weight', 'model.language_model.norm.weight'],
  ])('%s -> %s', (key, want) => expect(snakeCase(key)).toBe(want));

  test('nested objects and arrays are converted, values untouched', () => {
    const text = jsonText({
      checkpoint: { wrongShape: [{ name: 'aB' }], dtypes: { BF16: 3 } },
      list: ['camelCase'],
    });
    expect(JSON.parse(text)).toEqual({
      checkpoint: { wrong_shape: [{ name: 'aB' }], dtypes: { BF16: 3 } },
      list: ['camelCase'],
    });
  });
});
