# transformers' side of the GPU-machine benchmark (run by scripts/device/h200-bench.sh; by hand only, never in
# tests or CI). Same checkpoint, same shapes and the same prompt ids as the engine's parts.
#   python3 h200_torch.py speed    MODEL PROMPTS.json OUT.json [EXACT.json]
#       f32 (TF32 off) then bf16: prefill 8x512 and 1x512, decode b1 and b8, and the bf16 MMLU loop on the
#       prompts our exact stage scored (all of PROMPTS.json without EXACT.json)
#   python3 h200_torch.py logits   MODEL OUT.safetensors IDS
#       float32 (TF32 off, eager) logits [len, vocab] of one sequence as `logits.0`: what the shared
#       hf_logits.py computes, through Gemma3nForCausalLM for where the multimodal class cannot load
#   python3 h200_torch.py notebook MODEL PROMPTS.json OUT.json ORDER CLI
#       the published configs in ORDER (comma-separated indices into configs/gemma3n-e4b-published.csv) the
#       notebook's way: slice (our CLI) + load + evaluate each with transformers bf16
# Time: BENCH_END (epoch seconds) is when everything must be written; the MMLU loop also stops at
# BENCH_MMLU_END. OUT.json is rewritten after every figure, so a stop keeps what was measured.
import csv, json, os, shutil, subprocess, sys, time
import torch
import transformers

T = int(os.environ.get('BENCH_TOKENS', '512'))  # shorter for a dry run on a small model
# Greedy decoding picks among text ids only (ids >= 262144 are vision/audio tokens, as in the engine).
TEXT_VOCAB = 262144
MAX_PROMPTS = int(os.environ.get('BENCH_MAX_PROMPTS', '0'))  # dry run: score only the first N prompts
END = float(os.environ.get('BENCH_END', time.time() + 3600))
MMLU_END = min(END, float(os.environ.get('BENCH_MMLU_END', END)))
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
def mmlu_loop(m, prompts, choice, until=None):
    """One forward per question (batch 1), full-vocabulary log-softmax at the last position; stops at `until`."""
    if MAX_PROMPTS > 0:
        prompts = prompts[:MAX_PROMPTS]
    m(input_ids=torch.tensor([prompts[0]['ids']], device=dev))
    sync()
    t0 = time.time()
    correct = n = 0
    for p in prompts:
        if until is not None and time.time() > until:
            break
        lp = torch.log_softmax(m(input_ids=torch.tensor([p['ids']], device=dev)).logits[0, -1].float(), -1)[choice]
        correct += 'ABCD'[int(lp.argmax())] == p['gold']
        n += 1
    sync()
    el = time.time() - t0
    return n / el, correct / max(n, 1), el, n


def peak():
    return torch.cuda.max_memory_allocated() if dev == 'cuda' else None


def reset_peak():
    if dev == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def write(res, out_file):
    tmp = f'{out_file}.tmp'
    json.dump(res, open(tmp, 'w'), indent=1)
    os.replace(tmp, out_file)


def scored_prompts(data, exact_file):
    """The prompts our exact stage scored (same questions, same order), or all of them."""
    if not exact_file or not os.path.exists(exact_file):
        return data['prompts']
    exact = json.load(open(exact_file))
    keys = {(p[0], p[1]) for p in exact.get('predictions', [])}
    return [p for p in data['prompts'] if (p['subject'], p['index']) in keys] if keys else data['prompts']


def speed(model_dir, prompts_file, out_file, exact_file=None, reps=3, steps=16):
    """f32 first (the prefill goal is stated against it), then bf16 with its MMLU loop before the rest."""
    data = json.load(open(prompts_file))
    prompts = scored_prompts(data, exact_file)
    vocab = json.load(open(os.path.join(model_dir, 'config.json'))).get('text_config', {}).get('vocab_size', 262144)
    vocab = min(vocab, 262144)
    res = {'torch': torch.__version__, 'transformers': transformers.__version__, 'device': dev,
           'gpu': torch.cuda.get_device_name(0) if dev == 'cuda' else 'cpu'}
    write(res, out_file)
    for name, dtype in (('f32', torch.float32), ('bf16', torch.bfloat16)):
        if time.time() > END - 15:
            res.setdefault('skipped', []).append(f'{name}: time budget spent')
            break
        reset_peak()
        m, load_s = load(model_dir, dtype)
        res[f'{name}_load_s'] = load_s
        steps_ = [('prefill_8x512', lambda: prefill_rate(m, 8, T, vocab, reps)),
                  ('decode_b1', lambda: decode_rate(m, 1, vocab, steps))]
        if name == 'bf16':
            steps_.append(('mmlu', None))
        steps_ += [('prefill_1x512', lambda: prefill_rate(m, 1, T, vocab, reps)),
                   ('decode_b8', lambda: decode_rate(m, 8, vocab, steps))]
        for key, f in steps_:
            if time.time() > END - 10:
                res.setdefault('skipped', []).append(f'{name}_{key}: time budget spent')
                continue
            if key == 'mmlu':
                qps, acc, el, n = mmlu_loop(m, prompts, data['choice_ids'], MMLU_END)
                res.update(bf16_mmlu_questions_per_s=qps, bf16_mmlu_acc=acc, bf16_mmlu_seconds=el,
                           bf16_mmlu_questions=n, bf16_mmlu_questions_offered=len(prompts))
            else:
                res[f'{name}_{key}'] = f()
            res[f'{name}_peak_bytes'] = peak()
            print(name, key, {k: v for k, v in res.items() if k.startswith(name)}, flush=True)
            write(res, out_file)
        del m
    write(res, out_file)


def notebook(model_dir, prompts_file, out_file, order, cli):
    """Slice with our CLI (the notebook slices with its own Python code), load with transformers bf16, score;
    config by config in `order` while the last config's time still fits before BENCH_END."""
    data = json.load(open(prompts_file))
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, '..', '..', 'configs', 'gemma3n-e4b-published.csv'), newline='') as f:
        names = [r['name'] for r in csv.DictReader(f)]
    runs = []
    res = {'gpu': torch.cuda.get_device_name(0) if dev == 'cuda' else 'cpu', 'notebook_questions': len(data['prompts']),
           'notebook': runs}
    t0 = time.time()
    last = 0.0
    for i in order:
        if time.time() + last > END:
            break
        name = names[i]
        t = time.time()
        out = os.path.join('/tmp', 'mfl-notebook-slice')
        subprocess.run(['node', cli, 'slice', model_dir, '--out', out, '--preset', name, '--force'], check=True,
                       stdout=subprocess.DEVNULL)
        m, _ = load(out, torch.bfloat16)
        qps, acc, el, n = mmlu_loop(m, data['prompts'], data['choice_ids'])
        del m
        reset_peak()
        shutil.rmtree(out)
        last = time.time() - t
        runs.append({'name': name, 'acc': acc, 'questions': n, 'seconds': last})
        res.update(notebook_seconds=time.time() - t0, notebook_configs=len(runs))
        write(res, out_file)
        print(runs[-1], flush=True)
    res.update(notebook_seconds=time.time() - t0, notebook_configs=len(runs))
    write(res, out_file)


@torch.no_grad()
def logits(model_dir, out_file, ids):
    from safetensors.torch import save_file
    m, _ = load(model_dir, torch.float32)
    lg = m(input_ids=torch.tensor([[int(x) for x in ids.split(',')]], device=dev)).logits[0].float().cpu()
    save_file({'logits.0': lg.contiguous()}, out_file)
    print('wrote', out_file, list(lg.shape))


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'logits':
        logits(*sys.argv[2:5])
        sys.exit(0)
    if cmd == 'speed':
        speed(*sys.argv[2:6])
    elif cmd == 'notebook':
        notebook(sys.argv[2], sys.argv[3], sys.argv[4], [int(x) for x in sys.argv[5].split(',')], sys.argv[6])
    else:
        sys.exit('usage: see the head of h200_torch.py')
