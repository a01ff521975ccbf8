# transformers' side of the GPU-machine benchmark (run by scripts/device/h200-bench.sh; by hand only, never in
# tests or CI). Same checkpoint, same shapes and the same prompt ids as the engine's parts.
#   python3 h200_torch.py speed    MODEL PROMPTS.json OUT.json           f32 (TF32 off) and bf16 prefill 1x512
#                                                                       and 8x512, decode b1/b8, bf16 MMLU loop
#   python3 h200_torch.py notebook MODEL PROMPTS.json OUT.json A B CLI  published configs A..B-1 the notebook's
#                                                                       way: slice (our CLI) + load + evaluate
import csv, json, os, shutil, subprocess, sys, time
import torch
import transformers

T = int(os.environ.get('BENCH_TOKENS', '512'))  # shorter for a dry run on a small model
# Greedy decoding picks among text ids only (ids >= 262144 are vision/audio tokens, as in the engine).
TEXT_VOCAB = 262144
MAX_PROMPTS = int(os.environ.get('BENCH_MAX_PROMPTS', '0'))  # dry run: score only the first N prompts
dev = 'cuda' if torch.cuda.is_available() else 'cpu'
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def sync():
    if dev == 'cuda':
        torch.cuda.synchronize()


def load(model_dir, dtype):
    t = time.time()
    m = transformers.Gemma3nForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation='eager')
    m = m.eval().to(dev)
    sync()
    return m, time.time() - t


def ids_batch(b, t, vocab):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(3, vocab, (b, t), generator=g)
    x[:, 0] = 2
    return x.to(dev)


@torch.no_grad()
def prefill_rate(m, b, t, vocab, reps):
    x = ids_batch(b, t, vocab)
    m(input_ids=x)
    sync()
    t0 = time.time()
    for _ in range(reps):
        m(input_ids=x)
    sync()
    return b * t * reps / (time.time() - t0)


@torch.no_grad()
def decode_rate(m, b, vocab, steps):
    x = ids_batch(b, T, vocab)
    out = m(input_ids=x, use_cache=True)
    pkv = out.past_key_values
    nxt = out.logits[:, -1, :TEXT_VOCAB].argmax(-1, keepdim=True)
    sync()
    t0 = time.time()
    for _ in range(steps):
        out = m(input_ids=nxt, past_key_values=pkv, use_cache=True)
        pkv = out.past_key_values
        nxt = out.logits[:, -1, :TEXT_VOCAB].argmax(-1, keepdim=True)
    sync()
    return b * steps / (time.time() - t0)


@torch.no_grad()
def mmlu_loop(m, prompts, choice):
    """One forward per question (batch 1), full-vocabulary log-softmax at the last position."""
    if MAX_PROMPTS > 0:
        prompts = prompts[:MAX_PROMPTS]
    m(input_ids=torch.tensor([prompts[0]['ids']], device=dev))
    sync()
    t0 = time.time()
    correct = 0
    for p in prompts:
        lp = torch.log_softmax(m(input_ids=torch.tensor([p['ids']], device=dev)).logits[0, -1].float(), -1)[choice]
        correct += 'ABCD'[int(lp.argmax())] == p['gold']
    sync()
    el = time.time() - t0
    return len(prompts) / el, correct / len(prompts), el


def peak():
    return torch.cuda.max_memory_allocated() if dev == 'cuda' else None


def reset_peak():
    if dev == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def speed(model_dir, prompts_file, out_file, reps=3, steps=16):
    data = json.load(open(prompts_file))
    vocab = json.load(open(os.path.join(model_dir, 'config.json'))).get('text_config', {}).get('vocab_size', 262144)
    vocab = min(vocab, 262144)
    res = {'torch': torch.__version__, 'transformers': transformers.__version__, 'device': dev,
           'gpu': torch.cuda.get_device_name(0) if dev == 'cuda' else 'cpu'}
    for name, dtype in (('f32', torch.float32), ('bf16', torch.bfloat16)):
        reset_peak()
        m, load_s = load(model_dir, dtype)
        res[f'{name}_load_s'] = load_s
        for b in (1, 8):
            res[f'{name}_prefill_{b}x512'] = prefill_rate(m, b, T, vocab, reps)
            res[f'{name}_decode_b{b}'] = decode_rate(m, b, vocab, steps)
            print(name, b, res[f'{name}_prefill_{b}x512'], res[f'{name}_decode_b{b}'], flush=True)
        if name == 'bf16':
            qps, acc, el = mmlu_loop(m, data['prompts'], data['choice_ids'])
            res.update(bf16_mmlu_questions_per_s=qps, bf16_mmlu_acc=acc, bf16_mmlu_seconds=el,
                       bf16_mmlu_questions=qps * el)
        res[f'{name}_peak_bytes'] = peak()
        del m
    json.dump(res, open(out_file, 'w'), indent=1)


def notebook(model_dir, prompts_file, out_file, a, b, cli):
    """Slice with our CLI (the notebook slices with its own Python code), load with transformers bf16, score."""
    data = json.load(open(prompts_file))
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, '..', '..', 'configs', 'gemma3n-e4b-published.csv'), newline='') as f:
        names = [r['name'] for r in csv.DictReader(f)][a:b]
    runs = []
    t0 = time.time()
    for name in names:
        t = time.time()
        out = os.path.join('/tmp', 'mfl-notebook-slice')
        subprocess.run(['node', cli, 'slice', model_dir, '--out', out, '--preset', name, '--force'], check=True,
                       stdout=subprocess.DEVNULL)
        m, _ = load(out, torch.bfloat16)
        qps, acc, el = mmlu_loop(m, data['prompts'], data['choice_ids'])
        del m
        reset_peak()
        shutil.rmtree(out)
        runs.append({'name': name, 'acc': acc, 'questions': round(qps * el), 'seconds': time.time() - t})
        print(runs[-1], flush=True)
    json.dump({'notebook_seconds': time.time() - t0, 'notebook_configs': len(names), 'notebook': runs},
              open(out_file, 'w'), indent=1)


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'speed':
        speed(*sys.argv[2:5])
    elif cmd == 'notebook':
        notebook(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
    else:
        sys.exit('usage: see the head of h200_torch.py')
