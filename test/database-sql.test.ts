import { beforeAll, describe, expect, it } from 'vitest';
import { classify, createStatementClassifier, integerShape, loadParser, normalise } from '../gateway/database/sql.js';

/** Statement classification by the real PostgreSQL parser, and its cache. */

beforeAll(() => loadParser());

describe('statement classification', () => {
  it('names the kind and every table, resolving unqualified names to public and skipping CTE names', () => {
    const c = classify('WITH recent AS (SELECT id FROM ho_tich.khai_sinh) SELECT r.id, d.ten FROM recent r JOIN dia_ban d ON true');
    expect(c.kind).toBe('SELECT');
    expect(c.tables).toEqual([
      { schema: 'ho_tich', table: 'khai_sinh' },
      { schema: 'public', table: 'dia_ban' },
    ]);
    expect(classify("UPDATE citizens SET ho_ten = 'x' WHERE id = 1").tables).toEqual([{ schema: 'public', table: 'citizens' }]);
    expect(classify('INSERT INTO a.b SELECT * FROM c').tables).toEqual([
      { schema: 'a', table: 'b' },
      { schema: 'public', table: 'c' },
    ]);
  });

  it('the normalised text keeps no literal, comment or parameter value', () => {
    expect(normalise("SELECT * FROM t WHERE cccd = '056085000001' AND n = 4.5 /* 056085000002 */ -- 056085000003\n AND b = x'ff' AND d = $$056085000004$$ AND p = $1")).toBe('SELECT * FROM t WHERE cccd = ? AND n = ? AND b = ? AND d = ? AND p = ?');
  });

  it('a repeated statement shape is a cache lookup: values inlined or bound share one classification', () => {
    const classifier = createStatementClassifier(100);
    const a = classifier('SELECT abalance FROM pgbench_accounts WHERE aid = 1');
    expect(classifier('SELECT abalance FROM pgbench_accounts WHERE aid = 2')).toBe(a);
    expect(classifier('SELECT abalance FROM pgbench_accounts WHERE aid = $1')).toBe(a);
    // The value of a purpose setting is the statement's own, never another's.
    expect(classifier("SET ztgate.purpose = 'thanh-tra/HS-1'").purpose).toEqual({ value: 'thanh-tra/HS-1' });
    expect(classifier("SET ztgate.purpose = 'thong-ke/HS-2'").purpose).toEqual({ value: 'thong-ke/HS-2' });
    // A cached shape never hides a refusal: a second statement makes another shape.
    expect(classifier('SELECT abalance FROM pgbench_accounts WHERE aid = 1; DROP TABLE x').refusal?.reason).toBe('statement-multiple');
  });
  it('inlined integers share a shape without the parser, only where the parser itself replaces them', () => {
    expect(integerShape('SELECT abalance FROM pgbench_accounts WHERE aid = 42;')).toBe('SELECT abalance FROM pgbench_accounts WHERE aid = #;');
    // Quotes, dollar quoting, backslashes and comments could hide digits from the lexer: no shape.
    expect(integerShape("SELECT * FROM t WHERE a = 1 AND b = 'x'")).toBeNull();
    expect(integerShape('SELECT * FROM t WHERE a = 1 -- = 2')).toBeNull();
    expect(integerShape('SELECT * FROM t WHERE a = 1 /* x */')).toBeNull();
    expect(integerShape('SELECT * FROM t WHERE a = 1.5 AND b = 0x1f AND c = 1e3')).toBeNull();
    const classifier = createStatementClassifier(100);
    const a = classifier('SELECT abalance FROM pgbench_accounts WHERE aid = 7');
    expect(classifier('SELECT abalance FROM pgbench_accounts WHERE aid = 123456')).toBe(a);
    // A statement whose integer the normalisation keeps (a storage parameter) gets no shape: each text is classified.
    const ddl = classifier('CREATE TABLE t (a int) WITH (fillfactor = 70)');
    expect(classifier('CREATE TABLE t (a int) WITH (fillfactor = 80)')).not.toBe(ddl);
    expect(classifier('SELECT abalance FROM pgbench_accounts WHERE aid = 1; DROP TABLE x').refusal?.reason).toBe('statement-multiple');
  });
});
