// The smallest bootable VM disk: a boot sector that prints a line on the first serial port
// (COM1, which the VM's console logs) and halts. No bootloader, no kernel: the BIOS runs
// it, so the line on the console proves the disk itself booted. Built raw, or converted
// to qcow2, with its digest (the file's sha256: what a blueprint pins).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * 16-bit real mode, loaded at 0x7c00 (the message follows the code, at 0x7c17):
 *   cli; cld; xor ax,ax; mov ds,ax; mov si,0x7c17; mov dx,0x3f8
 *   next: lodsb; test al,al; jz done; out dx,al; jmp next
 *   done: hlt; jmp done
 */
const CODE = [0xfa, 0xfc, 0x31, 0xc0, 0x8e, 0xd8, 0xbe, 0x17, 0x7c, 0xba, 0xf8, 0x03, 0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0xf4, 0xeb, 0xfd];

export interface BootDisk { path: string; digest: string }

/** A disk at `path` (1 MiB, `format`) whose boot prints `line` on the serial console. */
export async function buildBootDisk(path: string, line: string, format: 'raw' | 'qcow2'): Promise<BootDisk> {
  const sector = Buffer.alloc(512);
  Buffer.from(CODE).copy(sector);
  const text = Buffer.from(`${line}\r\n\0`, 'latin1');
  if (CODE.length + text.length > 510) throw new RangeError('the line does not fit the boot sector');
  text.copy(sector, CODE.length);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  const raw = format === 'raw' ? path : `${path}.raw`;
  await writeFile(raw, Buffer.concat([sector, Buffer.alloc(1024 * 1024 - 512)]), { mode: 0o644 });
  if (format === 'qcow2') {
    await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, path]);
    await rm(raw);
  }
  return { path, digest: `sha256:${createHash('sha256').update(await readFile(path)).digest('hex')}` };
}
