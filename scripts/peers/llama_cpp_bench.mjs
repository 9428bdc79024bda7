#!/usr/bin/env node
// llama.cpp (through node-llama-cpp's prebuilt CPU binaries) prefill / greedy-decode timing.
//
//   node scripts/peers/llama_cpp_bench.mjs \
//     --model $COMET_CACHE/peers/SmolLM2-135M-Instruct.F32.gguf --tokens $COMET_CACHE/peers/tokens.json \
//     --lengths 512,2048,8192 --decode 32 --threads 2 --runs 3 [--batch 512] [--flash-attn auto|on|off] [--kv-type F32]
//
// node-llama-cpp is resolved from $COMET_CACHE/peers/node (scripts/peers/setup.sh), or from NODE_PATH.
//
// Protocol, for each length N and each of --runs runs (best run kept, separately for prefill and decode):
//   fresh context + sequence (contextSize = N + decode + 16, one sequence)
//   prefill: sequence.evaluate(first N token ids, greedy) -> first yielded token; llama.cpp computes
//            logits for the last prompt token only. prefill tok/s = N / seconds (includes sampling token #1)
//   decode : keep iterating the generator: each step evaluates the previous token (one-token llama_decode)
//            and greedily samples the next. decode tok/s = (D-1) / seconds for tokens #2..#D.
// One untimed warm-up (N = the smallest length, 8 decoded tokens) before the timed runs.
// Prints one JSON object on stdout; progress goes to stderr.

import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import os from "node:os";

function parseArgs(argv) {
    const a = {
        model: null, tokens: null, lengths: "512,2048,8192", decode: 32, threads: 2, runs: 3,
        batch: null, "flash-attn": "auto", "kv-type": "default",  // batch null = 512
    };
    for (let i = 0; i < argv.length; i++) {
        const k = argv[i];
        if (!k.startsWith("--")) throw new Error(`unexpected argument ${k}`);
        const key = k.slice(2);
        if (!(key in a)) throw new Error(`unknown option ${k}`);
        a[key] = argv[++i];
    }
    if (!a.model || !a.tokens) throw new Error("--model and --tokens are required");
    a.lengths = String(a.lengths).split(",").map(Number);
    a.decode = Number(a.decode);
    a.threads = Number(a.threads);
    a.runs = Number(a.runs);
    a.batch = a.batch == null ? null : Number(a.batch);
    if (a.decode < 2) throw new Error("--decode must be >= 2");
    return a;
}

// node-llama-cpp lives in $COMET_CACHE/peers/node, not next to this script: resolve it from there.
async function importNodeLlamaCpp() {
    const cache = process.env.COMET_CACHE || path.join(os.homedir(), ".cache", "comet");
    const bases = [
        ...(process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean).map((p) => path.join(p, "..")),
        path.join(cache, "peers", "node"),
        process.cwd(),
    ];
    for (const base of bases) {
        try {
            const req = createRequire(path.join(base, "package.json"));
            const entry = req.resolve("node-llama-cpp");
            const pkgJson = JSON.parse(fs.readFileSync(path.join(entry.split("node-llama-cpp")[0], "node-llama-cpp", "package.json")));
            const mod = await import(entry);
            return { mod, version: pkgJson.version, entry };
        } catch (e) {
            if (e.code !== "MODULE_NOT_FOUND" && e.code !== "ERR_MODULE_NOT_FOUND") throw e;
        }
    }
    throw new Error(`node-llama-cpp not found; run scripts/peers/setup.sh (looked in ${bases.join(", ")})`);
}

const log = (...m) => process.stderr.write(m.join(" ") + "\n");
const now = () => Number(process.hrtime.bigint()) / 1e9;

async function main() {
    const tStart = now();
    const args = parseArgs(process.argv.slice(2));
    const { mod, version, entry } = await importNodeLlamaCpp();
    const { getLlama, LlamaLogLevel, GgmlType } = mod;
    const ggmlName = (t) => (GgmlType && GgmlType[t]) || t;

    const tokFile = JSON.parse(fs.readFileSync(args.tokens, "utf8"));
    const ids = tokFile.ids;
    const maxLen = Math.max(...args.lengths);
    if (ids.length < maxLen) throw new Error(`${args.tokens} has ${ids.length} ids < ${maxLen}`);

    // llama.cpp's own log tells which CPU kernel variant was loaded and whether flash attention got enabled.
    const llamaLog = [];
    let logCalls = 0;
    const llama = await getLlama({
        gpu: false, build: "never", maxThreads: args.threads, logLevel: LlamaLogLevel.log,
        logger: (level, msg) => {
            logCalls++;
            msg = msg.trimEnd();
            if (/load_backend|Flash Attention|flash_attn|n_ubatch|KV buffer|compute buffer|CPU_REPACK/.test(msg)) llamaLog.push(msg);
            else if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal || level === LlamaLogLevel.warn) log(`llama.cpp ${level}: ${msg}`);
        },
    });
    const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0, useMmap: true });
    const fa = args["flash-attn"] === "on" ? true : args["flash-attn"] === "off" ? false : "auto";

    const ctxOptions = (n) => {
        const o = {
            contextSize: n + args.decode + 16,
            // n_batch = n_ubatch = batchSize in node-llama-cpp. 512 (llama.cpp's default ubatch) measured best:
            // at N=2048, 2 threads, flash attention: 256 -> 215, 512 -> 218, 1024 -> 213, whole prompt -> 206 tok/s.
            batchSize: Math.min(args.batch ?? 512, n + args.decode + 16),
            sequences: 1,
            threads: { ideal: args.threads, min: args.threads },
            flashAttention: fa,
        };
        if (args["kv-type"] !== "default") {
            o.experimentalKvCacheKeyType = args["kv-type"];
            o.experimentalKvCacheValueType = args["kv-type"];
        }
        return o;
    };

    async function once(n, decode) {
        const logStart = llamaLog.length;
        const context = await model.createContext(ctxOptions(n));
        const ctxLog = llamaLog.slice(logStart);
        const faLine = ctxLog.filter((l) => /Flash Attention/.test(l)).pop();
        const info = {
            contextSize: context.contextSize, batchSize: context.batchSize,
            flashAttention: faLine ? /enabled/.test(faLine) && !/disabled/.test(faLine) : context.flashAttention,
            flashAttentionLog: faLine ?? null,
            threads: context.currentThreads,
            kvCacheType: `${ggmlName(context.kvCacheKeyType)}/${ggmlName(context.kvCacheValueType)}`,
        };
        const seq = context.getSequence();
        try {
            const prompt = ids.slice(0, n);
            const out = [];
            const t0 = now();
            let t1 = 0;
            for await (const tok of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
                out.push(tok);
                if (out.length === 1) t1 = now();
                if (out.length >= decode) break;
            }
            const t2 = now();
            if (out.length !== decode) throw new Error(`generated ${out.length} tokens, wanted ${decode}`);
            if (seq.nextTokenIndex !== n + decode - 1) throw new Error(`sequence holds ${seq.nextTokenIndex} tokens, expected ${n + decode - 1}`);
            return { prefill_s: t1 - t0, decode_s: t2 - t1, ids: out, info };
        } finally {
            await seq.dispose();
            await context.dispose();
        }
    }

    log(`node-llama-cpp ${version} (${entry}); llama.cpp ${llama.llamaCppRelease.repo}@${llama.llamaCppRelease.release}, ${llama.buildType}`);
    log(`warm-up: ${Math.min(...args.lengths)} tokens + 8`);
    const warm = await once(Math.min(...args.lengths), 8);
    const rows = [];
    for (const n of args.lengths) {
        let best = null, firstIds = null, info = null;
        const prefills = [], decodes = [];
        for (let r = 0; r < args.runs; r++) {
            const res = await once(n, args.decode);
            const pf = n / res.prefill_s, dc = (args.decode - 1) / res.decode_s;
            prefills.push(pf); decodes.push(dc);
            if (firstIds == null) firstIds = res.ids;
            else if (JSON.stringify(firstIds) !== JSON.stringify(res.ids)) log(`WARNING: run ${r} decoded different ids at N=${n}`);
            info = res.info;
            log(`N=${n} run ${r}: prefill ${res.prefill_s.toFixed(3)} s (${pf.toFixed(1)} tok/s), decode ${res.decode_s.toFixed(3)} s (${dc.toFixed(2)} tok/s)`);
        }
        best = { prefill: Math.max(...prefills), decode: Math.max(...decodes) };
        rows.push({
            length: n,
            prefill_tokens_per_s: +best.prefill.toFixed(2),
            decode_tokens_per_s: +best.decode.toFixed(3),
            prefill_runs_tokens_per_s: prefills.map((x) => +x.toFixed(2)),
            decode_runs_tokens_per_s: decodes.map((x) => +x.toFixed(3)),
            first_decoded_ids: firstIds.slice(0, 8),
            decoded_ids: firstIds,
            context: info,
        });
    }

    let commit = null;
    try {
        // node-llama-cpp ships the llama.cpp sources it was built from as a git bundle; its HEAD is the commit.
        const bundle = path.join(entry.split("node-llama-cpp")[0], "node-llama-cpp", "llama", "gitRelease.bundle");
        const { execFileSync } = await import("node:child_process");
        commit = execFileSync("git", ["bundle", "list-heads", bundle], { encoding: "utf8" }).split(/\s+/)[0] || null;
    } catch { /* git missing: leave null */ }

    const result = {
        program: "llama.cpp",
        version: `node-llama-cpp ${version} (llama.cpp ${llama.llamaCppRelease.repo} release ${llama.llamaCppRelease.release}` +
            (commit ? `, commit ${commit}` : "") + `, ${llama.buildType} CPU binary)`,
        model: args.model,
        model_file_type: model.fileInfo?.metadata?.general?.file_type ?? null,
        cpu_backend: llamaLog.filter((l) => /load_backend/.test(l)).map((l) => l.replace(/^.*\//, "")).join("; ") || null,
        threads: args.threads,
        cpu: cpuName(),
        system_info: llama.systemInfo,
        batch_size: args.batch ?? 512,
        flash_attention_requested: fa,
        flash_attention_used: rows.every((r) => r.context.flashAttention === true) ? true
            : rows.every((r) => r.context.flashAttention === false) ? false : rows.map((r) => r.context.flashAttention),
        kv_cache_type: rows[0]?.context.kvCacheType ?? null,
        protocol: "fresh context per run; prefill = evaluate(N ids) to first greedy token; decode = tokens 2..D one at a time; best of runs",
        decode_tokens: args.decode,
        runs: args.runs,
        warmup_ids: warm.ids,
        rows,
        wall_s: +(now() - tStart).toFixed(1),
        llama_log_messages: logCalls,
        load_average: os.loadavg(),
    };
    process.stdout.write(JSON.stringify(result) + "\n");
    await model.dispose();
    await llama.dispose();
}

function cpuName() {
    try {
        const m = fs.readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m);
        return m ? m[1].trim() : os.cpus()[0]?.model;
    } catch { return os.cpus()[0]?.model ?? null; }
}

main().catch((e) => { log(e.stack || String(e)); process.exit(1); });
