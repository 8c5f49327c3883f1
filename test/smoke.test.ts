import t from 'tap';
import { x } from '../lib/index.js';
t.equal(x, 1);
