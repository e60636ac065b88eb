// A strict reader of the Prometheus text exposition format 0.0.4: every line is a HELP or
// TYPE comment or a sample of a declared family; families are contiguous; histograms have
// increasing bounds, cumulative counts ending in +Inf, a _sum and a _count equal to +Inf.
const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const floatText = /^(NaN|[+-]Inf|[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)$/;

function parseFloatText(text, where) {
  if (!floatText.test(text)) throw new Error(`${where}: bad value ${JSON.stringify(text)}`);
  return text === 'NaN' ? NaN : text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text);
}

function parseLabels(s, where) {
  const labels = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    const name = s.slice(i, eq);
    if (eq < 0 || !labelName.test(name)) throw new Error(`${where}: bad label name`);
    if (name in labels) throw new Error(`${where}: label ${name} repeated`);
    if (s[eq + 1] !== '"') throw new Error(`${where}: label value not quoted`);
    let value = '';
    let j = eq + 2;
    for (; s[j] !== '"'; j++) {
      if (j >= s.length) throw new Error(`${where}: unterminated label value`);
      if (s[j] === '\\') {
        const e = s[++j];
        if (e === 'n') value += '\n';
        else if (e === '\\' || e === '"') value += e;
        else throw new Error(`${where}: bad escape`);
      } else {
        value += s[j];
      }
    }
    labels[name] = value;
    i = j + 1;
    if (i < s.length && s[i++] !== ',') throw new Error(`${where}: expected ','`);
  }
  return labels;
}

// Returns Map(family name -> {type, help, samples: [{name, labels, value}]}); throws naming
// the first line that breaks the format.
export function parsePrometheus(text) {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a line feed');
  const families = new Map();
  const closed = new Set();
  let current = null;
  const seen = new Set();
  const family = (name) => {
    if (!families.has(name)) families.set(name, { type: null, help: null, samples: [] });
    return families.get(name);
  };
  const enter = (name, where) => {
    if (name === current) return;
    if (closed.has(name)) throw new Error(`${where}: family ${name} is not contiguous`);
    if (current) closed.add(current);
    current = name;
  };
  text.slice(0, -1).split('\n').forEach((line, index) => {
    const where = `line ${index + 1} (${line})`;
    let m;
    if ((m = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line))) {
      if (!metricName.test(m[1])) throw new Error(`${where}: bad metric name`);
      enter(m[1], where);
      const f = family(m[1]);
      if (f.type || f.samples.length) throw new Error(`${where}: TYPE twice or after samples`);
      f.type = m[2];
    } else if ((m = /^# HELP (\S+) (.*)$/.exec(line))) {
      if (!metricName.test(m[1])) throw new Error(`${where}: bad metric name`);
      enter(m[1], where);
      const f = family(m[1]);
      if (f.help !== null) throw new Error(`${where}: HELP twice`);
      f.help = m[2];
    } else if ((m = /^([^{ ]+)(?:\{(.*)\})? (\S+)$/.exec(line))) {
      const [, name, labelText, valueText] = m;
      if (!metricName.test(name)) throw new Error(`${where}: bad metric name`);
      const labels = labelText === undefined ? {} : parseLabels(labelText, where);
      const value = parseFloatText(valueText, where);
      const base = families.get(name)?.type ? name
        : name.replace(/_(bucket|sum|count)$/, '');
      const f = families.get(base);
      if (!f?.type || (base !== name && f.type !== 'histogram')) {
        throw new Error(`${where}: sample of an undeclared family`);
      }
      enter(base, where);
      const key = name + JSON.stringify(Object.entries(labels).sort());
      if (seen.has(key)) throw new Error(`${where}: duplicate sample`);
      seen.add(key);
      if (f.type === 'counter' && !(value >= 0)) throw new Error(`${where}: counter below 0`);
      f.samples.push({ name, labels, value });
    } else {
      throw new Error(`${where}: neither a HELP/TYPE comment nor a sample`);
    }
  });
  for (const [name, f] of families) {
    if (!f.type) throw new Error(`${name}: no TYPE`);
    if (f.type === 'histogram') checkHistogram(name, f);
  }
  return families;
}

function checkHistogram(name, f) {
  const series = new Map();
  const of = (labels) => {
    const { le, ...rest } = labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    if (!series.has(key)) series.set(key, { buckets: [], sum: undefined, count: undefined });
    return series.get(key);
  };
  for (const s of f.samples) {
    const entry = of(s.labels);
    if (s.name === `${name}_bucket`) {
      if (s.labels.le === undefined) throw new Error(`${name}: bucket without le`);
      entry.buckets.push([parseFloatText(s.labels.le, name), s.value]);
    } else if ('le' in s.labels) {
      throw new Error(`${name}: le on ${s.name}`);
    } else if (s.name === `${name}_sum`) {
      entry.sum = s.value;
    } else if (s.name === `${name}_count`) {
      entry.count = s.value;
    } else {
      throw new Error(`${name}: histogram sample ${s.name}`);
    }
  }
  if (series.size === 0) throw new Error(`${name}: no samples`);
  for (const { buckets, sum, count } of series.values()) {
    if (buckets.at(-1)?.[0] !== Infinity) throw new Error(`${name}: buckets do not end in +Inf`);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i][0] > buckets[i - 1][0])) throw new Error(`${name}: bounds not increasing`);
      if (buckets[i][1] < buckets[i - 1][1]) throw new Error(`${name}: buckets not cumulative`);
    }
    if (sum === undefined || count === undefined) throw new Error(`${name}: _sum or _count missing`);
    if (count !== buckets.at(-1)[1]) throw new Error(`${name}: _count differs from +Inf bucket`);
  }
}

// The value of sample `name` with exactly `labels`, or undefined.
export function sampleValue(families, name, labels = {}) {
  const want = JSON.stringify(Object.entries(labels).sort());
  for (const f of families.values()) {
    const s = f.samples.find((x) => x.name === name && JSON.stringify(Object.entries(x.labels).sort()) === want);
    if (s) return s.value;
  }
  return undefined;
}
