# Side-by-side timings with Hugging Face transformers on the GPU machine (torch + transformers are
# installed there). Usage:
#   python3 hf_speed.py MODEL_DIR TOKENIZER_JSON MMLU_DIR OUT_JSON LOGITS_OUT IDS64
# - fp32 and bf16: one forward of a batch of 8 x 512 random tokens (after a warm-up), timed with CUDA sync;
# - fp32: logits of one 64-token sequence (IDS64, comma-separated) saved to LOGITS_OUT for parity checks;
# - bf16: MMLU 5-shot, 10 questions per subject, one forward per question (batch 1), questions/s.
import csv, json, os, sys, time, torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
import transformers

model_dir, tok_path, mmlu_dir, out_path, logits_out, ids64 = sys.argv[1:7]
torch.backends.cuda.matmul.allow_tf32 = False
res = {}

def load(dtype):
    t = time.time()
    # The text-only class skips building the vision/audio towers (same text logits); fall back if absent.
    try:
        cls = transformers.Gemma3nForCausalLM
        m = cls.from_pretrained(model_dir, dtype=dtype, attn_implementation='eager')
    except Exception as e:
        print('Gemma3nForCausalLM failed, using Gemma3nForConditionalGeneration:', str(e)[:200], flush=True)
        m = transformers.Gemma3nForConditionalGeneration.from_pretrained(model_dir, dtype=dtype, attn_implementation='eager')
    m = m.eval().to('cuda')
    torch.cuda.synchronize()
    return m, time.time() - t

def timed_forward(m, ids, reps=3):
    with torch.no_grad():
        m(input_ids=ids)
        torch.cuda.synchronize()
        t = time.time()
        for _ in range(reps):
            m(input_ids=ids)
        torch.cuda.synchronize()
        return (time.time() - t) / reps

g = torch.Generator().manual_seed(0)
batch = torch.randint(3, 262144, (8, 512), generator=g)
batch[:, 0] = 2
batch = batch.cuda()
for name, dtype in (('fp32', torch.float32), ('bf16', torch.bfloat16)):
    m, load_s = load(dtype)
    s = timed_forward(m, batch)
    res[name] = {'load_s': load_s, 'prefill_8x512_s': s, 'prefill_tokens_per_s': 8 * 512 / s,
                 'max_mem_gib': torch.cuda.max_memory_allocated() / 2**30}
    print(name, res[name], flush=True)
    if name == 'fp32':
        seq = [int(x) for x in ids64.split(',')]
        with torch.no_grad():
            lg = m(input_ids=torch.tensor([seq], device='cuda')).logits[0].float().cpu().contiguous()
        save_file({'logits.0': lg}, logits_out)
        del m
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

tok = Tokenizer.from_file(tok_path)
L = ['A', 'B', 'C', 'D']
choice = [tok.encode(' ' + x, add_special_tokens=False).ids[0] for x in L]
def rows(split, subj):
    with open(os.path.join(mmlu_dir, split, f'{subj}_{split}.csv'), newline='', encoding='utf-8') as f:
        return list(csv.reader(f))
def fmt(r, ans):
    return r[0].strip() + '\n' + '\n'.join(f'{a}. {c}' for a, c in zip(L, r[1:5])) + '\nAnswer:' + (' ' + r[5] if ans else '')
subjects = sorted(f[:-len('_test.csv')] for f in os.listdir(os.path.join(mmlu_dir, 'test')))
prompts = []
for s in subjects:
    desc = f"The following are multiple choice questions (with answers) about {s.replace('_', ' ')}.\n\n"
    shots = ''.join(fmt(d, True) + '\n\n' for d in rows('dev', s)[:5])
    for r in rows('test', s)[:10]:
        prompts.append(tok.encode(desc + shots + fmt(r, False), add_special_tokens=True).ids)
ntok = sum(len(p) for p in prompts)
with torch.no_grad():
    m(input_ids=torch.tensor([prompts[0]], device='cuda'))
    torch.cuda.synchronize()
    t = time.time()
    for p in prompts:
        lp = torch.log_softmax(m(input_ids=torch.tensor([p], device='cuda')).logits[0, -1].float(), -1)[choice]
        lp.cpu()
    torch.cuda.synchronize()
    el = time.time() - t
res['mmlu_bf16'] = {'questions': len(prompts), 'seconds': el, 'questions_per_s': len(prompts) / el, 'tokens': ntok}
print('mmlu', res['mmlu_bf16'], flush=True)
json.dump(res, open(out_path, 'w'), indent=1)
