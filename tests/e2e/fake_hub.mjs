// A stand-in for the Hugging Face Hub, started by the hub tests on a free loopback port: the
// Hub's URL layout over real HTTP, serving fixture files.
//   GET  /api/models/{org}/{name}/revision/{rev}  → {id, sha, siblings: [{rfilename}]}
//   HEAD|GET /{org}/{name}/resolve/{rev}/{file}   → the file (ETag = git blob sha1,
//        X-Repo-Commit) or, for LFS files (*.safetensors, *.gguf), a 302 to /lfs/{sha256}
//        with X-Linked-Etag (the sha256) and X-Linked-Size
//   HEAD|GET /lfs/{sha256}                        → the bytes, honouring `Range: bytes=N-`
// Errors as the Hub sends them: 401 (no token) / 404 (token) with X-Error-Code RepoNotFound,
// 404 RevisionNotFound or EntryNotFound, 401/403 GatedRepo for a repo that needs a token.
// `faults` breaks LFS transfers on purpose: cut the connection after N bytes, stall after N
// bytes, or send corrupt bytes.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

export const kTestToken = 'hf_lmserve_test_token';

const sha1 = (bytes) => createHash('sha1').update(bytes).digest('hex');
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const isLfs = (file) => /\.(safetensors|gguf)$/.test(file);

// repos: { 'org/name': { files: { 'repo/path': '/abs/fixture/path' }, gated?: true } }
export async function startFakeHub(repos) {
  const blobs = new Map();  // sha256 → { bytes, file }
  const served = {};
  for (const [id, repo] of Object.entries(repos)) {
    const files = {};
    for (const [name, source] of Object.entries(repo.files)) {
      const bytes = readFileSync(source);
      const entry = { bytes, lfs: isLfs(name), gitSha: sha1(Buffer.concat([Buffer.from(`blob ${bytes.length}\0`), bytes])) };
      if (entry.lfs) {
        entry.sha256 = sha256(bytes);
        blobs.set(entry.sha256, { bytes, file: name });
      }
      files[name] = entry;
    }
    served[id] = { files, gated: repo.gated ?? false, commit: sha1(Buffer.from(`commit of ${id}`)) };
  }

  const hub = {
    requests: [],  // { method, path, range, authorization }
    faults: [],    // { file, kind: 'cut' | 'stall' | 'corrupt', after, times }
    stalled: [],   // responses held open by a stall fault
    repo: (id) => served[id],
  };

  const fail = (res, status, code, message) => {
    res.writeHead(status, { 'Content-Type': 'application/json', 'X-Error-Code': code, 'X-Error-Message': message });
    res.end(JSON.stringify({ error: message }));
  };
  // The repo of a request, or an error answered as the Hub does (and null).
  const repoFor = (req, res, id, rev) => {
    const repo = served[id];
    const auth = req.headers.authorization;
    if (!repo) {
      fail(res, auth ? 404 : 401, 'RepoNotFound', 'Repository not found');
      return null;
    }
    if (repo.gated && auth !== `Bearer ${kTestToken}`) {
      fail(res, auth ? 403 : 401, 'GatedRepo', `Access to model ${id} is restricted`);
      return null;
    }
    if (rev !== 'main' && rev !== repo.commit) {
      fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      return null;
    }
    return repo;
  };

  const sendBlob = (req, res, sha) => {
    const blob = blobs.get(sha);
    if (!blob) return fail(res, 404, 'EntryNotFound', 'no such blob');
    const fault = req.method === 'GET' ? hub.faults.find((f) => f.file === blob.file && f.times > 0) : undefined;
    if (fault) fault.times -= 1;
    let bytes = blob.bytes;
    if (fault?.kind === 'corrupt') {
      bytes = Buffer.from(bytes);
      bytes[bytes.length - 1] ^= 0xff;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    if (start > bytes.length) {
      res.writeHead(416, { 'Content-Range': `bytes */${bytes.length}` });
      return res.end();
    }
    const body = bytes.subarray(start);
    const headers = { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length, 'Accept-Ranges': 'bytes', ETag: `"${sha}"` };
    if (m) headers['Content-Range'] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
    res.writeHead(m ? 206 : 200, headers);
    if (req.method === 'HEAD') return res.end();
    if (!fault || fault.kind === 'corrupt') return res.end(body);
    res.write(body.subarray(0, fault.after - start), () => {
      if (fault.kind === 'cut') res.destroy();
      else hub.stalled.push(res);
    });
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://hub');
    const path = decodeURIComponent(url.pathname);
    hub.requests.push({ method: req.method, path, range: req.headers.range, authorization: req.headers.authorization });
    let m;
    if (req.method === 'GET' && (m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path))) {
      const repo = repoFor(req, res, m[1], m[2]);
      if (!repo) return;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify({
        id: m[1], sha: repo.commit,
        siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })),
      }));
    }
    if ((m = /^\/lfs\/([0-9a-f]{64})$/.exec(path))) return sendBlob(req, res, m[1]);
    if ((m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path))) {
      const repo = repoFor(req, res, m[1], m[2]);
      if (!repo) return;
      const file = repo.files[m[3]];
      if (!file) return fail(res, 404, 'EntryNotFound', `${m[3]} does not exist`);
      const common = { 'X-Repo-Commit': repo.commit };
      if (file.lfs) {
        res.writeHead(302, {
          ...common, Location: `/lfs/${file.sha256}`, 'X-Linked-Etag': `"${file.sha256}"`,
          'X-Linked-Size': file.bytes.length, ETag: `"${file.gitSha}"`, 'Content-Length': 0,
        });
        return res.end();
      }
      res.writeHead(200, { ...common, ETag: `"${file.gitSha}"`, 'Content-Length': file.bytes.length });
      return res.end(req.method === 'HEAD' ? undefined : file.bytes);
    }
    fail(res, 404, 'NotFound', `no route for ${path}`);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  hub.url = `http://127.0.0.1:${server.address().port}`;
  hub.stop = async () => {
    for (const res of hub.stalled) res.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return hub;
}
