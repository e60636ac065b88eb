// Unit tests of the Jinja engine: each expectation was checked against Python Jinja2 3.1
// configured like transformers (trim_blocks, lstrip_blocks, immutable sandbox).
#include <gtest/gtest.h>

#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

#include "chat/jinja/template.h"

namespace lmserve::chat::jinja {
namespace {

using nlohmann::ordered_json;

std::string render(std::string_view source, const std::string& context = "{}",
                   const RenderOptions& options = {}) {
  return Template(source).render(ordered_json::parse(context), options);
}

// Renders and returns "<Kind>: <message>" of the error it must raise.
std::string render_error(std::string_view source, const std::string& context = "{}",
                         const RenderOptions& options = {}) {
  try {
    std::string out = render(source, context, options);
    return "no error, rendered: " + out;
  } catch (const TemplateRenderError& e) {
    return std::string(e.kind_name()) + ": " + e.what();
  } catch (const TemplateRaised& e) {
    return std::string("TemplateError: ") + e.what();
  }
}

struct Case {
  const char* source;
  const char* expected;
  const char* context = "{}";
};

void check_cases(const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.source);
    try {
      EXPECT_EQ(render(c.source, c.context), c.expected);
    } catch (const TemplateError& e) {
      ADD_FAILURE() << "threw: " << e.what();
    }
  }
}

TEST(JinjaWhitespace, TrimBlocksAndLstripBlocks) {
  check_cases({
      {"a\n  {% if true %}\n    b\n  {% endif %}\nc", "a\n    b\nc"},
      {"  {# comment #}\nx {# inline #} y\n    {#- strip -#}\n  z", "x  yz"},
      {"{% for i in range(2) %}\n  item {{ i }}\n{% endfor %}", "  item 0\n  item 1\n"},
      {"line1\n{% set x = 1 %}\nline2 {% set y = 2 %}\n   line3", "line1\nline2    line3"},
      // `{{` is not a block: no lstrip, no trim.
      {"  {{ 'd' }}\nx", "  d\nx"},
  });
}

TEST(JinjaWhitespace, ExplicitMarkers) {
  check_cases({
      {"a  {{- 'b' -}}  c", "abc"},
      {"{%- for i in range(3) -%}\n  {{ i }}\n{%- endfor %}\ndone", "012done"},
      {"  {%+ if true %}e{% endif %}", "  e"},
      {"{% if true +%}\nf{% endif %}", "\nf"},
  });
}

TEST(JinjaWhitespace, RawBlocksTrailingNewlineAndCrlf) {
  check_cases({
      {"{% raw %}{{ not parsed }}{% endraw %}", "{{ not parsed }}"},
      {"x\n", "x"},  // keep_trailing_newline=False drops one
      {"x\n\n", "x\n"},
      {"a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", "a\nb\n"},
      {"{{ 'p\r\nq' }}", "p\nq"},  // string literals are normalised too
  });
}

TEST(JinjaExpressions, ArithmeticFollowsPython) {
  check_cases({
      {"{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }}",
       "3 -4 2 3.5 1024 0.5"},
      {"{{ 7.5 // 2 }} {{ 1 + 2.0 }} {{ 4 / 2 }} {{ -(3) }} {{ - 2.5 }} {{ true + 1 }}",
       "3.0 3.0 2.0 -3 -2.5 2"},
      {"{{ [1, 2] * 2 }} {{ 'ab' * 3 }} {{ 3 * 'x' }} {{ [1] + [2] }}",
       "[1, 2, 1, 2] ababab xxx [1, 2]"},
      {"{{ 1_000 }} {{ 0x1F }} {{ 1.5e3 }} {{ 0b101 }} {{ 0o17 }}", "1000 31 1500.0 5 15"},
      {"{{ '%s-%d' % ('a', 3) }} {{ '%s'|format(5) }} {{ '{}-{}'.format(1, 'b') }}", "a-3 5 1-b"},
  });
}

TEST(JinjaExpressions, LogicComparisonAndConcatenation) {
  check_cases({
      {"{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' or [] }} {{ none and 1 }} {{ not none }}",
       "x y [] None True"},
      {"{{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ 1 == 1.0 }} {{ 'a' in ['a'] }} {{ 'a' not in {'a': 1} "
       "}}",
       "True False True True False"},
      {"{{ 'a' ~ 1 ~ none ~ x ~ [1] }}", "a1None[1]"},
      {"{{ 'y' if true else 'n' }}|{{ 'x' if false }}|", "y||"},
      {"{{ 'b' in 'abc' }} {{ x is not defined }} {{ not x is defined }}", "True True True"},
  });
}

TEST(JinjaExpressions, PrintsLikePythonStr) {
  check_cases({
      {"{{ {'a': 1.0, 'b': 1e20, 'c': 1.5e-7, 'd': \"it's\", 'e': 'say \"hi\"'} }}",
       "{'a': 1.0, 'b': 1e+20, 'c': 1.5e-07, 'd': \"it's\", 'e': 'say \"hi\"'}"},
      {"{{ (1, 2) }} {{ (1,) }} {{ () }} {{ [none, true, false] }}",
       "(1, 2) (1,) () [None, True, False]"},
      {"{{ 3.0 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1/3 }} {{ 0.1 + 0.2 }} {{ "
       "-0.0 }}",
       "3.0 1e+16 1000000000000000.0 0.0001 1e-05 0.3333333333333333 0.30000000000000004 -0.0"},
      {"{{ m }}", "[{'type': 'text', 'text': \"it's\\n\\t\\x01\"}]",
       R"({"m": [{"type": "text", "text": "it's\n\t\u0001"}]})"},
      {"{{ m }}", "{'z': 1, 'a': 2}", R"({"m": {"z": 1, "a": 2}})"},  // insertion order kept
  });
}

TEST(JinjaExpressions, SlicingAndIndexingByCodePoint) {
  check_cases({
      {"{{ 'abc'[::-1] }} {{ 'héllo'[1:3] }} {{ [1,2,3,4,5][1::2] }} {{ [1,2,3][-1:] }} {{ "
       "'abc'[5:] }}|",
       "cba él [2, 4] [3] |"},
      {"{{ '😀é'|length }} {{ '😀é'[0] }} {{ '😀é'|reverse }} {{ [1,2,3][-1] }} {{ [1][5] }}|",
       "2 😀 é😀 3 |"},
  });
}

TEST(JinjaStatements, LoopsVariablesFilterElseAndControl) {
  check_cases({
      {"{% for x in [1,2,3] if x != 2 %}{{ loop.index }}/{{ loop.length }}:{{ x }} {{ "
       "loop.previtem }} "
       "{{ loop.nextitem }} {{ loop.revindex }} {{ loop.cycle('a','b') }} {{ loop.first }} {{ "
       "loop.last }};"
       "{% endfor %}",
       "1/2:1  3 2 a True False;2/2:3 1  1 b False True;"},
      {"{% for x in [] %}x{% else %}empty{% endfor %}", "empty"},
      {"{% for k, v in {'a': 1, 'b': [1, 'x']}.items() %}{{ k }}={{ v }};{% endfor %}",
       "a=1;b=[1, 'x'];"},
      {"{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}", "ba"},
      {"{% for a in [1,2,3] %}{% if a == 2 %}{% continue %}{% endif %}{{ a }}{% if a == 3 %}{% "
       "break %}"
       "{% endif %}{% endfor %}",
       "13"},
      {"{% for a in [[1, 2], [3, 4]] %}{% for b in a %}{{ loop.index }}{{ b }}{% endfor %};{{ "
       "loop.index }}"
       "{% endfor %}",
       "1122;11324;2"},
      {"{% for x in undefined_thing %}x{% else %}none{% endfor %}", "none"},
  });
}

TEST(JinjaStatements, ScopingMatchesJinja) {
  check_cases({
      // A set inside a loop body is local to that iteration.
      {"{% for x in [1,2,3] %}{% if loop.first %}{% set y = 5 %}{% endif %}[{{ y }}]{% endfor %}",
       "[5][][]"},
      {"{% set y = 1 %}{% for x in [1,2] %}{% set y = y + 10 %}{{ y }},{% endfor %}{{ y }}",
       "11,11,1"},
      // ...which is why templates use namespace().
      {"{% set ns = namespace(a=1) %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor "
       "%}{{ ns.a }}",
       "4"},
      {"{% if true %}{% set z = 3 %}{% endif %}{{ z }}", "3"},
      {"{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", "3[]"},
      {"{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set c, d = 'xy' %}{{ c }}{{ d }}", "12xy"},
  });
}

TEST(JinjaStatements, BlockSetFilterBlockAndGeneration) {
  check_cases({
      {"{% set x %}  block {{ 1 + 1 }}  {% endset %}[{{ x }}]{% set y | trim %}  t  {% endset "
       "%}[{{ y }}]",
       "[  block 2  ][t]"},
      {"{% filter upper %}hello {{ 'x' }}{% endfilter %}", "HELLO X"},
      {"{% generation %}kept {{ 1 }}{% endgeneration %}", "kept 1"},
  });
}

TEST(JinjaStatements, MacrosAndCallBlocks) {
  check_cases({
      {"{% macro m(a, b=2, c='x') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} "
       "{{ m(1, c='z') }}",
       "1-2-x 1-3-x 1-2-z"},
      {"{% macro m(a) %}{{ a }}:{{ varargs }}:{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }}",
       "1:(2, 3):{'k': 4}"},
      {"{% macro m() %}<{{ caller('x') }}>{% endmacro %}{% call(v) m() %}in {{ v }}{% endcall %}",
       "<in x>"},
      {"{% macro f(n) %}{% if n <= 1 %}1{% else %}{{ n * f(n - 1)|int }}{% endif %}{% endmacro "
       "%}{{ f(5) }}",
       "120"},
      {"{% macro m(a, d=a ~ '!') %}{{ d }}{% endmacro %}{{ m('hi') }}", "hi!"},
  });
  EXPECT_EQ(render_error("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
            "TypeError: macro 'm' takes not more than 1 argument(s)");
}

TEST(JinjaFilters, Strings) {
  check_cases({
      {"{{ '  hi  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'hELLO'|capitalize }} {{ 'abc'|upper }} {{ "
       "'AbC'|lower }}",
       "hi|hi|Hello ABC abc"},
      {"{{ \"hello world's\"|title }} {{ 'a-b c'|title }}", "Hello World's A-B C"},
      {"{{ 'aXbX'|replace('X', '-') }} {{ 'aXbX'|replace('X', '-', 1) }} {{ 'a b c'|wordcount }}",
       "a-b- a-bX 3"},
      {"{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, "
       "blank=true) }}",
       "a\n  b\n\n  c|  a\n  b|a\n  \n  b"},
      {"{{ none|string }} {{ 1.0|string }} {{ [1]|string }} {{ 'x'|center(5) }}|",
       "None 1.0 [1]   x  |"},
  });
}

TEST(JinjaFilters, SequencesAndMappings) {
  check_cases({
      {"{{ [3,1,2]|sort }} {{ ['b','A','a']|sort }} {{ ['b','A','a']|unique|list }} {{ [1,2,3]|sum "
       "}} "
       "{{ [1,5,3]|max }} {{ ['a','B']|min }}",
       "[1, 2, 3] ['A', 'a', 'b'] ['b', 'A'] 6 5 a"},
      {"{{ {'b': 1, 'A': 2}|dictsort }} {{ {'b': 2, 'a': 1}|dictsort(reverse=true) }} "
       "{{ {'b': 2, 'a': 1}|dictsort(by='value') }} {{ {2: 'x', 1: 'y'}|dictsort }}",
       "[('A', 2), ('b', 1)] [('b', 2), ('a', 1)] [('a', 1), ('b', 2)] [(1, 'y'), (2, 'x')]"},
      {"{{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} {{ 'abc'|list }} {{ {'a': 1}|list }} {{ "
       "'abc'|length }} "
       "{{ [1,2]|count }} {{ {'a': 1}|items|list }}",
       "1 3 ['a', 'b', 'c'] ['a'] 3 2 [('a', 1)]"},
      {"{{ [1, 'a', none]|join('-') }} {{ ('a', 'b')|join }} {{ [{'n': 'x'}, {'n': 'y'}]|join(',', "
       "attribute='n') }}",
       "1-a-None ab x,y"},
      {"{{ {'content': 'x'}|attr('content') }}|{{ {'a': 1}|attr('items') is callable }}", "|True"},
      {"{{ [[1,2],[3]]|map('length')|list }} {{ [1,2,3,4,5]|batch(2)|list }} {{ [1,2]|batch(3, "
       "0)|list }}",
       "[2, 1] [[1, 2], [3, 4], [5]] [[1, 2, 0]]"},
  });
}

TEST(JinjaFilters, SelectRejectMap) {
  const char* people =
      R"({"m": [{"role": "user", "c": "hi"}, {"role": "assistant", "c": "yo"}, {"role": "user"}]})";
  check_cases({
      {"{{ m|selectattr('role', 'equalto', 'user')|list|length }}", "2", people},
      {"{{ m|map(attribute='role')|join(',') }}", "user,assistant,user", people},
      {"{{ m|rejectattr('role', 'in', ['user'])|map(attribute='c')|first }}", "yo", people},
      {"{{ m|selectattr('c')|map(attribute='c')|list }} {{ m|rejectattr('c', 'defined')|list }}",
       "['hi', 'yo'] [{'role': 'user'}]", people},
      {"{{ m|map(attribute='c', default='-')|list }}", "['hi', 'yo', '-']", people},
      {"{{ [1,2,3,4]|select('odd')|list }} {{ [1,2,3,4]|reject('odd')|list }} {{ "
       "['a','b']|map('upper')|list }}",
       "[1, 3] [2, 4] ['A', 'B']"},
      {"{{ none|selectattr('x')|list }} {{ none|map(attribute='x')|list }}", "[] []"},
  });
}

TEST(JinjaFilters, NumbersAndDefaults) {
  check_cases({
      {"{{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.1|round(0, 'ceil') "
       "}}",
       "3 2.57 2.0 4.0 3.0"},
      {"{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int(7) }} {{ '3.5'|float }} {{ 3|float }} {{ 1.9|int "
       "}} {{ none|int }}",
       "42 4 7 3.5 3.0 1 0"},
      {"{{ x|default('d') }} {{ none|default('d') }} {{ ''|default('d', true) }} {{ x|d('e') }}",
       "d None d e"},
      {"{{ x|length }} {{ x|list }} {{ x|join(',') }}|{{ x|upper }}|{{ x|trim }}|{{ x|first }}|{{ "
       "x|items|list }}",
       "0 [] ||||[]"},
  });
}

TEST(JinjaFilters, ToJsonIsPythonJsonDumps) {
  check_cases({
      {"{{ {'a': [1, {'b': none}], 'c': 'é\"\\n', 'd': 2.5, 'e': true}|tojson }}",
       "{\"a\": [1, {\"b\": null}], \"c\": \"é\\\"\\n\", \"d\": 2.5, \"e\": true}"},
      {"{{ {'a': [1, 2], 'b': {}, 'c': []}|tojson(indent=2) }}",
       "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {},\n  \"c\": []\n}"},
      {"{{ 'é😀'|tojson(ensure_ascii=true) }} {{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}",
       "\"\\u00e9\\ud83d\\ude00\" {\"a\": 2, \"b\": 1}"},
      {"{{ [1, 2]|tojson(separators=(',', ':')) }} {{ {1: 'x'}|tojson }} {{ "
       "'a'|tojson(indent='\\t') }}",
       "[1,2] {\"1\": \"x\"} \"a\""},
      {"{{ m|tojson }}", "{\"z\": \"tab\\there \\u0001 \u007f \u2028\", \"a\": 1.0}",
       R"({"m": {"z": "tab\there \u0001 \u007f \u2028", "a": 1.0}})"},
  });
}

TEST(JinjaTests, BuiltinTests) {
  check_cases({
      {"{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 1 is number }} {{ true is "
       "number }} "
       "{{ true is integer }} {{ 1 is integer }} {{ 1.0 is float }} {{ 'a' is string }} {{ {} is "
       "mapping }}",
       "False True True True True False True True True True"},
      {"{{ [] is iterable }} {{ 'a' is sequence }} {{ x is sequence }} {{ 1 is iterable }} {{ 3 is "
       "odd }} "
       "{{ 4 is even }} {{ 6 is divisibleby 3 }} {{ 1 is sameas true }} {{ true is sameas true }}",
       "True True True False True True True False True"},
      {"{{ 'a' is in 'abc' }} {{ 2 is equalto 2 }} {{ 'A' is upper }} {{ true is boolean }} {{ "
       "false is false }} "
       "{{ 3 is gt 2 }} {{ 3 is ne 3 }} {{ range is callable }} {{ 'x' is not string }}",
       "True True True True True True False True False"},
  });
}

TEST(JinjaMethods, PythonStringDictListMethods) {
  const char* data = R"({"d": {"k": "v", "z": [1, 2.5, null, true, {"n": -3}]}})";
  check_cases({
      {"{{ 'xxhixx'.strip('x') }}|{{ ' a b  c '.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b "
       "c'.split(' ', 1) }}|"
       "{{ 'a b c'.rsplit(None, 1) }}",
       "hi|['a', 'b', 'c']|['a', 'b', '', 'c']|['a', 'b c']|['a b', 'c']"},
      {"{{ 'aXbXc'.replace('X', '-', 1) }} {{ 'abc'.startswith(('x', 'a')) }} {{ "
       "'abc'.endswith('bc') }} "
       "{{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'a\\n\\nb\\r\\nc'.splitlines() }}",
       "a-bXc True True 2 3 ['a', '', 'b', 'c']"},
      {"{{ ' x '.lstrip() }}|{{ ' x '.rstrip() }}|{{ 'abc'.count('b') }} {{ '12'.isdigit() }} {{ "
       "'x'.zfill(3) }} "
       "{{ 'hello world'.title() }} {{ \"they're\".title() }} {{ 'straße'.upper() }}",
       "x | x|1 True 00x Hello World They'Re STRASSE"},
      {"{{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list|length }} {{ 'k' in d }} {{ "
       "d['k'] }} "
       "{{ d.k }} {{ d.get('k') }} {{ d.get('q', 'def') }} {{ d.get('q') }}",
       "[('k', 'v'), ('z', [1, 2.5, None, True, {'n': -3}])] ['k', 'z'] 2 True v v v def None",
       data},
      {"{{ [1, 2, 1].count(1) }} {{ [1, 2].index(2) }} {{ ('a', 'b').index('b') }}", "2 1 1"},
  });
}

TEST(JinjaGlobals, RangeNamespaceDictStrftimeRaise) {
  check_cases({
      {"{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }}",
       "[0, 1, 2] [1, 4, 7] [5, 3, 1]"},
      {"{{ dict(a=1, b=2) }} {{ namespace(a=1) }} {{ namespace({'b': 2}).b }}",
       "{'a': 1, 'b': 2} <Namespace {'a': 1}> 2"},
  });
  RenderOptions frozen;
  std::tm tm{};
  tm.tm_year = 126;
  tm.tm_mon = 0;
  tm.tm_mday = 15;
  tm.tm_hour = 9;
  tm.tm_min = 30;
  tm.tm_wday = 4;
  tm.tm_yday = 14;
  frozen.fixed_time = tm;
  EXPECT_EQ(
      render(
          "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %d, %Y %A %H:%M:%S %I %p %j %-d') }}",
          "{}", frozen),
      "15 Jan 2026|January 15, 2026 Thursday 09:30:00 09 AM 015 15");
  try {
    render("{{ raise_exception('Conversation roles must alternate ' ~ 1) }}");
    ADD_FAILURE() << "no exception";
  } catch (const TemplateRaised& e) {
    EXPECT_STREQ(e.what(), "Conversation roles must alternate 1");
  }
}

TEST(JinjaMarkup, SafeStringsEscapeTheirPlainOperands) {
  check_cases({
      {"{{ '<b>'|safe + '<i>' }} {{ '<i>' + '<b>'|safe }} {{ ('<b>'|safe ~ '<i>') }} {{ "
       "'<&>\"\\''|e }}",
       "<b>&lt;i&gt; &lt;i&gt;<b> <b><i> &lt;&amp;&gt;&#34;&#39;"},
      {"{{ ('<x>'|safe).replace('x', '<y>') }} {{ '<x>'|replace('x', '<y>') }}",
       "<&lt;y&gt;> <<y>>"},
  });
}

TEST(JinjaUndefined, UsesRaiseLikeJinja2DefaultUndefined) {
  EXPECT_EQ(
      render("[{{ x }}][{{ x ~ 'a' }}][{% for i in x %}{{ i }}{% endfor %}][{{ x is defined }}]"),
      "[][a][][False]");
  EXPECT_EQ(render_error("{{ 'a' + x }}"), "UndefinedError: 'x' is undefined");
  EXPECT_EQ(render_error("{{ x.y }}"), "UndefinedError: 'x' is undefined");
  EXPECT_EQ(render_error("{{ x|tojson }}"),
            "TypeError: Object of type Undefined is not JSON serializable");
  EXPECT_EQ(render("{{ {'a': 1}.b }}|{{ {'a': 1}['b'] }}|{{ [1][5] }}|{{ none.x }}"), "|||");
  EXPECT_EQ(render_error("{{ {'a': 1}.b.c }}"),
            "UndefinedError: 'dict object' has no attribute 'b'");
  EXPECT_EQ(render_error("{{ m.content.replace('a', 'b') }}", R"({"m": {"content": [1]}})"),
            "UndefinedError: 'list object' has no attribute 'replace'");
}

TEST(JinjaErrors, PythonTypeErrorsAndSandbox) {
  EXPECT_EQ(render_error("{{ 'a' + [1] }}"),
            "TypeError: can only concatenate str (not \"list\") to str");
  EXPECT_EQ(render_error("{{ 'a' + {} }}"),
            "TypeError: can only concatenate str (not \"dict\") to str");
  EXPECT_EQ(render_error("{{ [1] + 'a' }}"),
            "TypeError: can only concatenate list (not \"str\") to list");
  EXPECT_EQ(render_error("{{ 1 + 'a' }}"),
            "TypeError: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(render_error("{% for x in none %}{% endfor %}"),
            "TypeError: 'NoneType' object is not iterable");
  EXPECT_EQ(render_error("{{ 'x' < 1 }}"),
            "TypeError: '<' not supported between instances of 'str' and 'int'");
  EXPECT_EQ(render_error("{{ 10 / 0 }}"), "ZeroDivisionError: division by zero");
  EXPECT_EQ(render_error("{{ [].append(1) }}"),
            "SecurityError: access to attribute 'append' of 'list' object is unsafe.");
  EXPECT_EQ(render_error("{{ {}.update({}) }}"),
            "SecurityError: access to attribute 'update' of 'dict' object is unsafe.");
  EXPECT_EQ(render_error("{% set d = {} %}{% set d.x = 1 %}"),
            "TemplateRuntimeError: cannot assign attribute on non-namespace object");
  EXPECT_EQ(render_error("{% set a, b = [1, 2, 3] %}"),
            "ValueError: too many values to unpack (expected 2)");
  EXPECT_EQ(render_error("{{ x|frobnicate }}"),
            "TemplateRuntimeError: No filter named 'frobnicate' found.");
  EXPECT_EQ(render_error("{{ x is frobnicated }}"),
            "TemplateRuntimeError: No test named 'frobnicated' found.");
  EXPECT_EQ(render("{{ ''.__class__ }}|{{ x.__class__ }}"), "|");
}

TEST(JinjaErrors, SyntaxErrorsCarryTheLine) {
  auto line_of = [](std::string_view src) {
    try {
      Template t(src);
    } catch (const TemplateSyntaxError& e) {
      return e.line();
    }
    return -1;
  };
  EXPECT_EQ(line_of("ok\n{% if %}"), 2);
  EXPECT_EQ(line_of("a\nb\n{% for x in y %}"), 4 - 1);
  EXPECT_EQ(line_of("{{ 1 +  }}"), 1);
  EXPECT_EQ(line_of("\n\n{% endif %}"), 3);
  EXPECT_EQ(line_of("{% unknowntag %}"), 1);
  EXPECT_EQ(line_of("x\n{# unclosed"), 2);
  EXPECT_EQ(line_of("{{ 'unterminated }}"), 1);
  EXPECT_EQ(line_of("{% break %}"), 1);
  EXPECT_EQ(line_of("{% include 'x' %}"), 1);
  EXPECT_EQ(line_of("\n{{ {'a': x[,]} }}"), 2);  // found by fuzz_jinja: a null subscript
  EXPECT_EQ(line_of("{{ x[1,,2] }}"), 1);
  EXPECT_THROW(Template("{% for x in y %}{% endfor %}{% endfor %}"), TemplateSyntaxError);
}

TEST(JinjaContext, OrderedJsonKeepsKeyOrderAndNullsAreNone) {
  EXPECT_EQ(Template("{{ t|tojson }} {{ n is none }} {{ n is defined }}")
                .render(ordered_json::parse(R"({"t": {"b": 1, "a": 2}, "n": null})")),
            "{\"b\": 1, \"a\": 2} True True");
  // nlohmann::json iterates objects sorted by key.
  EXPECT_EQ(Template("{{ t|tojson }}").render(nlohmann::json::parse(R"({"t": {"b": 1, "a": 2}})")),
            "{\"a\": 2, \"b\": 1}");
  EXPECT_EQ(Template("{{ i }} {{ neg }} {{ f }} {{ b }}")
                .render(nlohmann::json::parse(
                    R"({"i": 9007199254740993, "neg": -5, "f": 2.0, "b": false})")),
            "9007199254740993 -5 2.0 False");
}

TEST(JinjaLimits, HostileTemplatesFailCleanly) {
  auto kind = [](std::string_view src, const RenderOptions& options = {}) {
    try {
      Template(src).render(ordered_json::object(), options);
    } catch (const TemplateRenderError& e) {
      return std::string(e.kind_name());
    } catch (const TemplateError& e) {
      return std::string("other: ") + e.what();
    }
    return std::string("rendered");
  };
  EXPECT_EQ(
      kind("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
      "LimitExceeded");
  EXPECT_EQ(kind("{{ range(10**9)|length }}"), "OverflowError");  // Jinja2 sandbox's MAX_RANGE
  EXPECT_EQ(kind("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), "LimitExceeded");
  EXPECT_EQ(kind("{{ 'x' * 1000000000 }}"), "LimitExceeded");
  EXPECT_EQ(
      kind("{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}"
           "{% endfor %}"),
      "LimitExceeded");
  EXPECT_EQ(kind("{% set ns = namespace(l=[1]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] "
                 "%}{% endfor %}"),
            "LimitExceeded");
  EXPECT_EQ(kind("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"), "LimitExceeded");
  EXPECT_EQ(kind("{{ 2 ** 100 }}"), "OverflowError");
  // Widths are sizes too (found by fuzz_jinja: tojson(indent=66666666666666662)).
  EXPECT_EQ(kind("{{ [1] | tojson(indent=66666666666666662) }}"), "LimitExceeded");
  EXPECT_EQ(kind("{{ 'a' | indent(1000000000) }}"), "LimitExceeded");
  EXPECT_EQ(kind("{{ ('\n' * 100000) | indent('x' * 100000) }}"), "LimitExceeded");
  EXPECT_EQ(kind("{{ 'a' | center(1000000000) }}"), "LimitExceeded");
  RenderOptions small;
  small.max_output_bytes = 100;
  EXPECT_EQ(kind("{% for i in range(1000) %}{{ i }}{% endfor %}", small), "LimitExceeded");
  EXPECT_EQ(
      kind("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(50) }}"),
      "rendered");

  std::string deep_parens = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_THROW(Template{deep_parens}, TemplateSyntaxError);
  std::string deep_ifs;
  for (int i = 0; i < 5000; ++i) deep_ifs += "{% if 1 %}";
  for (int i = 0; i < 5000; ++i) deep_ifs += "{% endif %}";
  EXPECT_THROW(Template{deep_ifs}, TemplateSyntaxError);
}

}  // namespace
}  // namespace lmserve::chat::jinja
