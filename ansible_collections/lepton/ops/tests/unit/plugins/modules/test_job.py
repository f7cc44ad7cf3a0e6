# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for lepton.ops.job.

The module runs with the real lepton_ops library (parameter checks, inventory, planner, client);
only the aggregator's HTTP API is faked, with an httpx.MockTransport (``FakeAggregator``), so no
request leaves the process. The inventory is read by a child Python, as in a real run, and
reading it in the test's own process is an error (AnsiballZ would not allow it). The last test
runs the module through ansible-playbook. Without lepton_ops installed (``ansible-test units``),
only the tests of the missing-library path and of the documentation run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml

from ansible.module_utils import basic

from ansible_collections.lepton.ops.plugins.module_utils import lepton as lepton_utils
from ansible_collections.lepton.ops.plugins.modules import job as job_module
from ansible_collections.lepton.ops.tests.unit.plugins.modules.utils import run_module

TOKEN = 'unit-test-token-0123456789abcdef'
JOB_ID = '5d0c1f0b8e3a4f7d9a2c6b1e0f4d3a29'
MISSING = 'Traceback: No module named lepton_ops'
MEAN_RESULT = {'count': 30000, 'sum': 15000.5, 'mean': 0.50001667, 'variance': 0.0833,
               'std': 0.2887, 'min': 1e-05, 'max': 0.99999}
# The keys of `lepton-ops job run --json` (lepton_ops.jobs.client.Outcome.to_dict()).
OUTCOME_KEYS = {'job_id', 'status', 'kind', 'result', 'per_node', 'makespan_s'}
# Keys every module may return besides its documented return values.
COMMON_KEYS = {'changed', 'failed', 'msg', 'exception'}

# The fake aggregator answers plain http: the fleet's explicit lab option.
INVENTORY = """
all:
  vars: {lepton_insecure_http: true}
  children:
    aggregator:
      hosts:
        node3: {ansible_host: 127.0.1.3, lepton_aggregator_port: 9100}
    workers:
      hosts:
        node1: {ansible_host: 127.0.1.1, lepton_weight: 1}
        node2: {ansible_host: 127.0.1.2, lepton_weight: 2}
"""


class FakeAggregator:
    """The aggregator's job and artifact API as an httpx.MockTransport handler.

    ``script`` is the job's status at each status request in turn (the last one repeats);
    ``down`` makes every request after the submission fail as a dead aggregator does.
    ``artifacts`` holds the uploaded artifacts by SHA-256, ``result`` is the job's result.
    """

    def __init__(self, httpx):
        self.httpx = httpx
        self.requests = []
        self.submitted = None
        self.script = ['running', 'running', 'succeeded']
        self.reason = None
        self.reject_code = None  # answer the submission with this HTTP status...
        self.reject_text = None  # ...and this error text
        self.down = False
        self.asked = 0
        self.artifacts = {}
        self.result = MEAN_RESULT
        self.reject_upload = None  # answer artifact uploads with this HTTP status

    def __call__(self, request):
        httpx = self.httpx
        self.requests.append(request)
        if self.down and self.submitted is not None:
            raise httpx.ConnectError('connection refused', request=request)
        if request.headers.get('authorization') != 'Bearer ' + TOKEN:
            return httpx.Response(401, json={'error': 'unauthorized'})
        path = request.url.path
        if path.startswith('/v1/artifacts/'):
            return self.artifact(request, path.rsplit('/', 1)[1])
        if request.method == 'POST' and path == '/v1/jobs':
            if self.reject_code:
                return httpx.Response(self.reject_code, json={'error': self.reject_text})
            self.submitted = json.loads(request.content)
            return httpx.Response(202, json={'job_id': JOB_ID, 'status': 'running'})
        if request.method == 'GET' and path == '/v1/jobs/' + JOB_ID:
            return httpx.Response(200, json=self.status())
        if request.method == 'GET' and path == '/v1/jobs/%s/result' % JOB_ID:
            return httpx.Response(200, json={'job_id': JOB_ID, 'kind': self.submitted['kind'],
                                             'status': 'succeeded', 'result': self.result})
        return httpx.Response(404, json={'error': 'not found'})

    def artifact(self, request, digest):
        httpx = self.httpx
        if request.method == 'GET':
            if digest in self.artifacts:
                return httpx.Response(200, json={'sha256': digest,
                                                 'size': len(self.artifacts[digest])})
            return httpx.Response(404, json={'error': 'no artifact ' + digest})
        if request.method == 'PUT':
            if self.reject_upload:
                return httpx.Response(self.reject_upload, json={'error': 'artifact too large'})
            if hashlib.sha256(request.content).hexdigest() != digest:
                return httpx.Response(400, json={'error': 'the digest does not match'})
            self.artifacts[digest] = request.content
            return httpx.Response(201, json={'sha256': digest, 'size': len(request.content),
                                             'created': True})
        return httpx.Response(405, json={'error': 'method not allowed'})

    def status(self):
        state = self.script[min(self.asked, len(self.script) - 1)]
        self.asked += 1
        finished = state != 'running'
        return {
            'job_id': JOB_ID,
            'kind': self.submitted['kind'],
            'status': state,
            'strategy': self.submitted['strategy'],
            'tasks': self.submitted['tasks'],
            'shards': 12,
            'created_at': 1700000000.0,
            'finished_at': 1700000001.25 if finished else None,
            'params': self.submitted['params'],
            'progress': {'shards_done': 12 if finished else self.asked, 'shards_total': 12,
                         'tasks_done': 300 if finished else 25 * self.asked, 'tasks_total': 300},
            'per_node': {'node1': {'tasks': 100, 'shards': 4, 'seconds': 0.5},
                         'node2': {'tasks': 200, 'shards': 8, 'seconds': 0.75}},
            'lost_nodes': [],
            'reason': self.reason if state == 'failed' else None,
            'predicted_makespan_units': 100.0,
            'makespan_s': 1.25 if finished else None,
        }

    def paths(self):
        return [(request.method, request.url.path) for request in self.requests]

    def uploads(self):
        return [request for request in self.requests if request.method == 'PUT']


@pytest.fixture
def library(monkeypatch):
    """lepton_ops (and httpx) installed; the environment holds no lepton-ops settings."""
    pytest.importorskip('lepton_ops.jobs.run')
    pytest.importorskip('httpx')
    assert job_module.JOB_IMPORT_ERROR is None
    for name in ('LEPTON_OPS_AGGREGATOR_URL', 'LEPTON_OPS_STATE_DIR'):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aggregator(library, monkeypatch):
    """Every httpx.Client made during the test talks to a FakeAggregator."""
    import httpx

    fake = FakeAggregator(httpx)
    real_client = httpx.Client

    class RoutedClient(real_client):
        def __init__(self, *args, **kwargs):
            kwargs['transport'] = httpx.MockTransport(fake)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, 'Client', RoutedClient)
    monkeypatch.setattr(job_module, 'POLL_S', 0.001)

    # Inside AnsiballZ, Ansible's inventory API cannot be imported: the module must leave reading
    # the inventory to a child Python. Here its own process may not read one either.
    from ansible.inventory import manager

    def in_process(*args, **kwargs):
        raise AssertionError('the inventory was read in the module process')

    monkeypatch.setattr(manager, 'InventoryManager', in_process)
    return fake


def write_token(state_dir, mode=0o600, text=TOKEN + '\n'):
    path = state_dir / 'secrets' / 'service-token'
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(text)
    os.chmod(path, mode)
    return path


@pytest.fixture
def fleet(tmp_path):
    """A controller's state directory holding the token, and the fleet's inventory."""
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(INVENTORY)
    state = tmp_path / 'state'
    write_token(state)
    return {
        'state': state,
        'inventory': inventory,
        'args': {'kind': 'mean', 'tasks': 300, 'params': {'task_size': 100, 'seed': 7},
                 'inventory': str(inventory), 'state_dir': str(state)},
    }


PREDICT_ROWS = 40


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def predict(library, tmp_path):
    """A small scikit-learn classifier saved with skops, rows to score (.npy and .csv), and the
    result the predict kind makes of them (what the aggregator would return)."""
    np = pytest.importorskip('numpy')
    pytest.importorskip('skops')
    linear_model = pytest.importorskip('sklearn.linear_model')
    from lepton_ops.jobs.kinds import get_kind
    from lepton_ops.jobs.model_files import save_model

    rng = np.random.default_rng(3)
    train = rng.normal(size=(100, 3))
    model = linear_model.LogisticRegression().fit(train, (train[:, 0] > 0).astype(int))
    rows = rng.normal(size=(PREDICT_ROWS, 3))
    files = {'model': save_model(model, tmp_path / 'model.skops'),
             'npy': tmp_path / 'rows.npy', 'csv': tmp_path / 'rows.csv'}
    np.save(files['npy'], rows)
    files['csv'].write_text('f1,f2,f3\n' + '\n'.join(','.join(map(repr, row))
                                                     for row in rows.tolist()) + '\n')
    kind = get_kind('predict')
    loaded = {'model': kind.load_artifact('model', files['model'].read_bytes()),
              'data': kind.load_artifact('data', files['npy'].read_bytes())}
    files['result'] = kind.finalize(kind.map({'tasks': PREDICT_ROWS}, 0, PREDICT_ROWS,
                                             artifacts=loaded))
    files['expected'] = model.predict(rows).tolist()
    return files


def predict_args(fleet, predict, data='npy', **more):
    args = dict(fleet['args'], kind='predict', params={},
                artifacts={'model': str(predict['model']), 'data': str(predict[data])}, **more)
    del args['tasks']
    return args


def documented_returns():
    return set(yaml.safe_load(job_module.RETURN))


def assert_documented(result):
    undocumented = set(result) - documented_returns() - COMMON_KEYS
    assert not undocumented, undocumented
    assert TOKEN not in json.dumps(result)


# --------------------------------------------------------------------------- running a job


def test_runs_the_job_and_returns_its_outcome(aggregator, fleet):
    result = run_module(job_module.main, fleet['args'])

    assert not result.get('failed'), result
    assert result == {
        'changed': True,
        'job_id': JOB_ID,
        'status': 'succeeded',
        'kind': 'mean',
        'result': MEAN_RESULT,
        'per_node': {'node1': {'tasks': 100, 'seconds': 0.5},
                     'node2': {'tasks': 200, 'seconds': 0.75}},
        'makespan_s': 1.25,
    }
    assert set(result) - {'changed'} == OUTCOME_KEYS
    assert aggregator.submitted == {'kind': 'mean', 'params': {'task_size': 100, 'seed': 7},
                                    'tasks': 300, 'strategy': 'weighted'}
    assert aggregator.paths() == [('POST', '/v1/jobs')] + [('GET', '/v1/jobs/' + JOB_ID)] * 3 + [
        ('GET', '/v1/jobs/%s/result' % JOB_ID)]
    # The address comes from the inventory's aggregator host; the token only in the header.
    assert {str(request.url.host) for request in aggregator.requests} == {'127.0.1.3'}
    assert {request.url.port for request in aggregator.requests} == {9100}
    assert all(request.headers['authorization'] == 'Bearer ' + TOKEN
               for request in aggregator.requests)
    assert_documented(result)


def test_passes_strategy_and_shard_size_and_coerces_params(aggregator, fleet):
    args = dict(fleet['args'], kind='sleep', params={'task_ms': '2.5'}, strategy='equal',
                shard_size=7)
    result = run_module(job_module.main, args)

    assert not result.get('failed'), result
    assert aggregator.submitted == {'kind': 'sleep', 'params': {'task_ms': 2.5}, 'tasks': 300,
                                    'strategy': 'equal', 'shard_size': 7}


def test_wait_false_submits_and_returns_the_job_id(aggregator, fleet):
    result = run_module(job_module.main, dict(fleet['args'], wait=False, timeout=0.001))

    assert not result.get('failed'), result
    assert result['changed'] is True
    assert result['job_id'] == JOB_ID
    assert result['status'] == 'running'
    assert result['kind'] == 'mean'
    assert 'lepton-ops job watch ' + JOB_ID in result['msg']
    assert 'result' not in result
    assert aggregator.paths() == [('POST', '/v1/jobs')]
    assert_documented(result)


def test_failed_job_fails_with_its_reason_and_returns_its_id(aggregator, fleet):
    aggregator.script = ['running', 'failed']
    aggregator.reason = 'every worker was lost   (node1, node2)'

    result = run_module(job_module.main, fleet['args'])

    assert result['failed'] is True
    assert result['msg'] == 'job %s failed: every worker was lost (node1, node2)' % JOB_ID
    assert result['error_kind'] == 'OperationFailed'
    assert result['changed'] is True
    assert result['job_id'] == JOB_ID
    assert result['status'] == 'failed'
    assert result['result'] is None
    assert set(OUTCOME_KEYS) <= set(result)
    assert ('GET', '/v1/jobs/%s/result' % JOB_ID) not in aggregator.paths()
    assert_documented(result)


def test_timeout_fails_and_says_the_job_goes_on(aggregator, fleet):
    aggregator.script = ['running']

    result = run_module(job_module.main, dict(fleet['args'], timeout=0.05))

    assert result['failed'] is True
    assert result['error_kind'] == 'JobTimeout'
    assert result['msg'].startswith('job %s did not finish within 0.05 s (' % JOB_ID)
    assert "goes on on the aggregator: follow it with 'lepton-ops job watch %s'" % JOB_ID \
        in result['msg']
    assert result['changed'] is True
    assert result['job_id'] == JOB_ID
    assert result['status'] == 'running'
    assert result['kind'] == 'mean'
    assert 'result' not in result
    assert aggregator.asked >= 2
    assert_documented(result)


def test_aggregator_lost_while_following_still_returns_the_job_id(aggregator, fleet):
    aggregator.down = True

    result = run_module(job_module.main, fleet['args'])

    assert result['failed'] is True
    assert result['error_kind'] == 'OperationFailed'
    assert 'aggregator at http://127.0.1.3:9100 is not answering' in result['msg']
    assert result['changed'] is True
    assert result['job_id'] == JOB_ID
    assert_documented(result)


# --------------------------------------------------------------------------- artifacts


@pytest.mark.parametrize(('data', 'tasks'), [('npy', None), ('csv', PREDICT_ROWS)])
def test_predict_job_uploads_its_artifacts_and_submits_their_digests(aggregator, fleet, predict,
                                                                     data, tasks):
    aggregator.result = predict['result']
    args = predict_args(fleet, predict, data)
    if tasks is not None:
        args['tasks'] = tasks

    result = run_module(job_module.main, args)

    assert not result.get('failed'), result
    assert result['changed'] is True
    assert result['job_id'] == JOB_ID
    assert result['status'] == 'succeeded'
    assert result['kind'] == 'predict'
    assert result['result'] == predict['result']
    assert result['result']['rows'] == PREDICT_ROWS
    assert result['result']['predictions'] == predict['expected']
    assert set(result) - {'changed'} == OUTCOME_KEYS
    digests = {'model': sha256(predict['model']), 'data': sha256(predict[data])}
    # Each artifact is asked for, uploaded as it is on disk, then the job names them by digest.
    assert aggregator.paths()[:5] == [
        ('GET', '/v1/artifacts/' + digests['model']), ('PUT', '/v1/artifacts/' + digests['model']),
        ('GET', '/v1/artifacts/' + digests['data']), ('PUT', '/v1/artifacts/' + digests['data']),
        ('POST', '/v1/jobs')]
    uploads = aggregator.uploads()
    assert [upload.content for upload in uploads] == [predict['model'].read_bytes(),
                                                      predict[data].read_bytes()]
    assert {upload.headers['content-type'] for upload in uploads} == {'application/octet-stream'}
    assert aggregator.submitted == {'kind': 'predict', 'params': {}, 'tasks': PREDICT_ROWS,
                                    'strategy': 'weighted', 'artifacts': digests}
    assert all(request.headers['authorization'] == 'Bearer ' + TOKEN
               for request in aggregator.requests)
    assert_documented(result)


def test_artifacts_the_aggregator_holds_are_not_uploaded_again(aggregator, fleet, predict):
    aggregator.artifacts[sha256(predict['model'])] = predict['model'].read_bytes()

    first = run_module(job_module.main, predict_args(fleet, predict, shard_size=8))
    second = run_module(job_module.main, predict_args(fleet, predict, strategy='equal'))

    assert not first.get('failed'), first
    assert not second.get('failed'), second
    # Only the data was uploaded, once; both jobs named the same artifacts.
    assert [upload.url.path for upload in aggregator.uploads()] == [
        '/v1/artifacts/' + sha256(predict['npy'])]
    assert aggregator.submitted['artifacts'] == {'model': sha256(predict['model']),
                                                 'data': sha256(predict['npy'])}
    assert aggregator.submitted['strategy'] == 'equal'


def test_artifact_the_aggregator_refuses_is_bad_input_and_no_job(aggregator, fleet, predict):
    aggregator.reject_upload = 413

    result = run_module(job_module.main, predict_args(fleet, predict))

    assert result['failed'] is True
    assert result['error_kind'] == 'BadInput'
    assert result['msg'] == 'artifact too large'
    assert not result.get('changed')
    assert 'job_id' not in result
    assert aggregator.submitted is None
    assert ('POST', '/v1/jobs') not in aggregator.paths()


def unsafe_model(tmp_path):
    import skops.io as sio
    from lepton_ops.jobs.kinds.sleep import SleepKind

    path = tmp_path / 'unsafe.skops'
    path.write_bytes(sio.dumps(SleepKind()))
    return str(path)


@pytest.mark.parametrize(('change', 'message'), [
    ({'artifacts': {'model': '{tmp}/nope.skops', 'data': '{npy}'}},
     '--model {tmp}/nope.skops does not exist'),
    ({'artifacts': {'model': '{unsafe}', 'data': '{npy}'}},
     '--model {unsafe}: '),
    ({'artifacts': {'model': '{model}', 'data': '{npy}'}, 'tasks': 10},
     'a predict job has one task per data row: tasks is 10, the data has 40 rows'),
    ({'artifacts': {'model': '{model}'}}, 'job kind predict needs --data'),
    ({'artifacts': {'model': '{npy}', 'data': '{npy}'}}, '--model {npy}: must be a .skops file'),
    ({'artifacts': {'model': '{model}', 'data': '{model}'}},
     '--data {model}: must be a .npy or .csv file'),
    ({'artifacts': {'model': '{model}', 'data': '{npy}', 'weights': '{npy}'}},
     'job kind predict does not take --weights (its options: --model, --data)'),
    ({'artifacts': {'model': '{model}', 'data': 7}}, 'artifact data must be the path of a file'),
    ({'params': {'seed': 1}}, 'job kind predict does not take --seed (its options: --model'),
    ({'kind': 'mean', 'tasks': 10}, 'job kind mean does not take --model, --data (its options: '),
    ({'kind': 'mean', 'artifacts': {}}, 'job kind mean needs --tasks'),
])
@pytest.mark.parametrize('check_mode', [False, True])
def test_bad_artifacts_fail_before_anything_is_sent(aggregator, fleet, predict, tmp_path, change,
                                                    message, check_mode):
    paths = {'tmp': str(tmp_path), 'model': str(predict['model']), 'npy': str(predict['npy'])}
    if '{unsafe}' in json.dumps(change):
        paths['unsafe'] = unsafe_model(tmp_path)
    args = predict_args(fleet, predict, _ansible_check_mode=check_mode)
    for key, value in change.items():
        if key == 'artifacts':
            value = {name: path.format(**paths) if isinstance(path, str) else path
                     for name, path in value.items()}
        args[key] = value

    result = run_module(job_module.main, args)

    assert result['failed'] is True
    assert message.format(**paths) in result['msg']
    assert '\n' not in result['msg']
    assert result['error_kind'] == 'BadInput'
    assert not result.get('changed')
    assert 'job_id' not in result
    assert aggregator.requests == []


def test_unsafe_model_names_what_it_refused(aggregator, fleet, predict, tmp_path):
    args = predict_args(fleet, predict)
    args['artifacts']['model'] = unsafe_model(tmp_path)

    result = run_module(job_module.main, args)

    assert result['failed'] is True
    assert result['error_kind'] == 'BadInput'
    assert 'lepton_ops.jobs.kinds.sleep' in result['msg']
    assert aggregator.requests == []


def test_artifact_paths_expand_the_home_directory(aggregator, fleet, predict, monkeypatch):
    monkeypatch.setenv('HOME', str(predict['model'].parent))
    args = predict_args(fleet, predict)
    args['artifacts'] = {'model': '~/model.skops', 'data': '~/rows.npy'}

    result = run_module(job_module.main, args)

    assert not result.get('failed'), result
    assert aggregator.submitted['artifacts']['model'] == sha256(predict['model'])


def test_check_mode_checks_the_artifacts_and_uploads_nothing(aggregator, fleet, predict):
    from lepton_ops.jobs.planner import make_plan

    result = run_module(job_module.main, predict_args(fleet, predict, shard_size=5,
                                                      _ansible_check_mode=True))

    assert not result.get('failed'), result
    assert aggregator.requests == []
    assert aggregator.artifacts == {}
    assert result['changed'] is True
    assert 'not submitted' in result['msg']
    assert not set(result) & OUTCOME_KEYS
    # The task count comes from the data: one task per row.
    assert result['plan'] == make_plan([('node1', 1), ('node2', 2)], PREDICT_ROWS,
                                       shard_size=5).to_dict()
    assert_documented(result)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(('change', 'message'), [
    ({'params': {'task_ms': 5}}, 'job kind mean does not take --task-ms'),
    ({'params': {'task_size': 0}}, '--task-size must be 1 or more, got 0'),
    ({'params': {'seed': 'seven'}}, "--seed must be a whole number, got 'seven'"),
    ({'kind': 'nope'}, "unknown job kind 'nope': known kinds are "),
    ({'tasks': -1}, '--tasks must be 0 or more, got -1'),
    ({'shard_size': 0}, 'the shard size must be 1 or more tasks, got 0'),
    ({'timeout': 0}, 'the timeout must be more than 0 seconds, got 0'),
    ({'aggregator_url': '127.0.1.3:9100'}, 'must look like http://HOST:PORT'),
    ({'inventory': '/nonexistent/inventory.yml'}, 'inventory /nonexistent/inventory.yml does not'),
])
@pytest.mark.parametrize('check_mode', [False, True])
def test_bad_input_fails_before_submitting(aggregator, fleet, change, message, check_mode):
    args = dict(fleet['args'], _ansible_check_mode=check_mode, **change)
    result = run_module(job_module.main, args)

    assert result['failed'] is True
    assert message in result['msg']
    assert '\n' not in result['msg']
    assert result['error_kind'] == 'BadInput'
    assert not result.get('changed')
    assert 'job_id' not in result
    assert aggregator.requests == []


def test_job_the_aggregator_rejects_is_bad_input_and_not_submitted(aggregator, fleet):
    aggregator.reject_code = 400
    aggregator.reject_text = 'tasks must be at most 1000000000000'

    result = run_module(job_module.main, fleet['args'])

    assert result['failed'] is True
    assert result['msg'] == 'tasks must be at most 1000000000000'
    assert result['error_kind'] == 'BadInput'
    assert not result.get('changed')
    assert 'job_id' not in result


def test_missing_token_file_fails_and_sends_nothing(aggregator, fleet, tmp_path):
    empty = tmp_path / 'elsewhere'

    result = run_module(job_module.main, dict(fleet['args'], state_dir=str(empty)))

    assert result['failed'] is True
    assert result['error_kind'] == 'BadInput'
    assert result['msg'] == 'no service token at %s: deploy first (lepton-ops deploy)' % (
        empty / 'secrets' / 'service-token')
    assert aggregator.requests == []


def test_token_file_others_can_read_is_refused(aggregator, fleet):
    write_token(fleet['state'], mode=0o644)

    result = run_module(job_module.main, fleet['args'])

    assert result['failed'] is True
    assert result['error_kind'] == 'BadInput'
    assert 'has mode 0644' in result['msg']
    assert aggregator.requests == []
    assert_documented(result)


def test_wrong_token_names_the_file_not_the_token(aggregator, fleet):
    write_token(fleet['state'], text='some-other-token\n')

    result = run_module(job_module.main, fleet['args'])

    assert result['failed'] is True
    assert result['error_kind'] == 'OperationFailed'
    assert 'refused the token in %s (401)' % (fleet['state'] / 'secrets' / 'service-token') \
        in result['msg']
    assert 'some-other-token' not in json.dumps(result)
    assert not result.get('changed')


def test_needs_an_inventory_or_an_aggregator_url(aggregator, fleet):
    args = dict(fleet['args'])
    del args['inventory']

    result = run_module(job_module.main, args)

    assert result['failed'] is True
    assert 'one of the following is required: inventory, aggregator_url' in result['msg']
    assert aggregator.requests == []


# --------------------------------------------------------------------------- where things are


def test_aggregator_url_overrides_the_inventory(aggregator, fleet):
    args = dict(fleet['args'], aggregator_url='http://127.0.0.1:18700/')
    result = run_module(job_module.main, args)

    assert not result.get('failed'), result
    assert {(request.url.host, request.url.port) for request in aggregator.requests} == {
        ('127.0.0.1', 18700)}


@pytest.mark.parametrize('with_option', [False, True])
def test_aggregator_url_from_the_environment(aggregator, fleet, monkeypatch, with_option):
    monkeypatch.setenv('LEPTON_OPS_AGGREGATOR_URL', 'http://127.0.0.1:18701')
    args = dict(fleet['args'])
    del args['inventory']
    if with_option:
        args['aggregator_url'] = 'http://127.0.0.1:18702'

    result = run_module(job_module.main, args)

    assert not result.get('failed'), result
    expected = 18702 if with_option else 18701
    assert {request.url.port for request in aggregator.requests} == {expected}


def test_state_dir_defaults_to_lepton_ops_own(aggregator, fleet, monkeypatch):
    from lepton_ops.settings import default_state_dir

    monkeypatch.setenv('LEPTON_OPS_STATE_DIR', str(fleet['state']))
    args = dict(fleet['args'])
    del args['state_dir']

    result = run_module(job_module.main, args)

    assert not result.get('failed'), result
    assert default_state_dir() == fleet['state'].resolve()


def test_state_dir_expands_user(aggregator, fleet, monkeypatch):
    monkeypatch.setenv('HOME', str(fleet['state'].parent))

    result = run_module(job_module.main, dict(fleet['args'], state_dir='~/state'))

    assert not result.get('failed'), result


# --------------------------------------------------------------------------- check mode


def test_check_mode_returns_the_plan_and_submits_nothing(aggregator, fleet):
    from lepton_ops.jobs.planner import make_plan

    args = dict(fleet['args'], shard_size=25, _ansible_check_mode=True)
    result = run_module(job_module.main, args)

    assert not result.get('failed'), result
    assert aggregator.requests == []
    assert result['changed'] is True
    assert 'not submitted' in result['msg']
    assert not set(result) & OUTCOME_KEYS
    plan = result['plan']
    # The workers of the inventory, in name order, with their lepton_weight.
    assert plan == make_plan([('node1', 1), ('node2', 2)], 300, shard_size=25).to_dict()
    assert [(node['name'], node['tasks']) for node in plan['nodes']] == [('node1', 100),
                                                                         ('node2', 200)]
    assert len(plan['shards']) == 12
    assert_documented(result)


def test_check_mode_equal_strategy_plans_an_even_split(aggregator, fleet):
    args = dict(fleet['args'], strategy='equal', _ansible_check_mode=True)
    result = run_module(job_module.main, args)

    assert [node['tasks'] for node in result['plan']['nodes']] == [150, 150]


def test_check_mode_without_inventory_has_no_plan(aggregator, fleet):
    args = dict(fleet['args'], aggregator_url='http://127.0.0.1:18700', _ansible_check_mode=True)
    del args['inventory']

    result = run_module(job_module.main, args)

    assert not result.get('failed'), result
    assert result['changed'] is True
    assert 'plan' not in result
    assert aggregator.requests == []


def test_check_mode_warns_about_a_missing_token(aggregator, fleet, tmp_path):
    args = dict(fleet['args'], state_dir=str(tmp_path / 'fresh'), _ansible_check_mode=True)
    with mock.patch.object(basic.AnsibleModule, 'warn', autospec=True) as warn:
        result = run_module(job_module.main, args)

    assert not result.get('failed'), result
    assert 'plan' in result
    [(dummy, warning)] = [call.args for call in warn.call_args_list]
    assert 'no service token at ' in warning and 'a real run would fail' in warning


def test_check_mode_with_a_fleet_without_workers_fails(aggregator, fleet):
    fleet['inventory'].write_text(INVENTORY.replace('workers', 'others'))
    result = run_module(job_module.main, dict(fleet['args'], _ansible_check_mode=True))

    assert result['failed'] is True
    assert result['error_kind'] == 'BadInput'
    assert "no host in the 'workers' group" in result['msg']


# --------------------------------------------------------------------------- without lepton_ops


def test_missing_library_fails_with_missing_required_lib(fleet):
    with mock.patch.object(job_module, 'JOB_IMPORT_ERROR', MISSING):
        result = run_module(job_module.main, fleet['args'])

    assert result['failed'] is True
    assert 'Failed to import the required Python library (lepton-ops)' in result['msg']
    assert 'No module named lepton_ops' in result['exception']


def test_missing_library_also_fails_in_check_mode(fleet):
    args = dict(fleet['args'], _ansible_check_mode=True)
    with mock.patch.object(lepton_utils, 'LEPTON_OPS_IMPORT_ERROR', MISSING):
        result = run_module(job_module.main, args)

    assert result['failed'] is True
    assert 'lepton-ops' in result['msg']


# --------------------------------------------------------------------------- documentation


def test_documentation_matches_argument_spec():
    documented = yaml.safe_load(job_module.DOCUMENTATION)['options']
    spec = job_module.argument_spec()

    assert set(documented) == set(spec)
    for name, option in spec.items():
        assert documented[name]['type'] == option['type'], name
        assert documented[name].get('required', False) == option.get('required', False), name
        assert documented[name].get('default') == option.get('default'), name
        assert documented[name].get('choices') == option.get('choices'), name
    assert 'token' not in ' '.join(spec)


def test_return_documents_the_outcome_keys():
    returned = yaml.safe_load(job_module.RETURN)

    assert OUTCOME_KEYS | {'plan', 'error_kind'} == set(returned)


def test_return_documents_every_plan_key(library, fleet):
    from lepton_ops.jobs.fleet import plan_inventory

    plan = plan_inventory(fleet['inventory'], 10).to_dict()
    documented = yaml.safe_load(job_module.RETURN)['plan']['contains']

    assert set(documented) == set(plan)
    assert set(documented['nodes']['contains']) == set(plan['nodes'][0])
    assert set(documented['shards']['contains']) == set(plan['shards'][0])


def test_outcome_keys_are_the_librarys(library):
    from lepton_ops.jobs.client import Outcome

    status = {'job_id': 'j', 'status': 'failed', 'kind': 'pi', 'per_node': {}}
    assert set(Outcome(status, None).to_dict()) == OUTCOME_KEYS


# --------------------------------------------------------------- through ansible-playbook

PLAYBOOK = """
- name: Run lepton.ops.job as a playbook does
  hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Plan a job in check mode
      lepton.ops.job:
        kind: mean
        tasks: 30
        params: {task_size: "50"}
        inventory: "{{ inventory_path }}"
        state_dir: "{{ state_dir }}"
      check_mode: true
      register: planned

    - name: Ask for a parameter the kind does not take
      lepton.ops.job:
        kind: mean
        tasks: 30
        params: {task_ms: 5}
        inventory: "{{ inventory_path }}"
        state_dir: "{{ state_dir }}"
      register: refused
      ignore_errors: true

    - name: Check a predict job's files and plan it in check mode
      lepton.ops.job:
        kind: predict
        artifacts:
          model: "{{ model_path }}"
          data: "{{ data_path }}"
        inventory: "{{ inventory_path }}"
        state_dir: "{{ state_dir }}"
      check_mode: true
      register: predict_planned

    - name: Keep the results
      ansible.builtin.copy:
        content: "{{ {'planned': planned, 'refused': refused, 'predict_planned': predict_planned}
          | to_json }}"
        dest: "{{ results }}"
        mode: "0600"
"""


def test_runs_under_ansible_playbook(library, fleet, predict, tmp_path):
    """The module as Ansible runs it (AnsiballZ, a module process of its own); nothing is sent."""
    playbook_command = Path(sys.executable).parent / 'ansible-playbook'
    if not playbook_command.is_file():
        pytest.skip('no ansible-playbook next to %s' % sys.executable)
    playbook = tmp_path / 'play.yml'
    playbook.write_text(PLAYBOOK)
    results = tmp_path / 'results.json'
    root = Path(job_module.__file__).resolve().parents[5]  # the directory of ansible_collections/
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(root), ANSIBLE_NOCOLOR='1')
    env.pop('ANSIBLE_CONFIG', None)
    extra = {'inventory_path': str(fleet['inventory']), 'state_dir': str(fleet['state']),
             'results': str(results), 'model_path': str(predict['model']),
             'data_path': str(predict['csv'])}

    ran = subprocess.run(
        [str(playbook_command), '-i', 'localhost,', '-c', 'local', str(playbook),
         '-e', json.dumps(extra)],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300, check=False)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    data = json.loads(results.read_text())
    planned, refused = data['planned'], data['refused']
    assert planned['changed'] is True and not planned.get('failed'), planned
    assert [node['tasks'] for node in planned['plan']['nodes']] == [10, 20]
    assert refused['failed'] is True
    assert refused['error_kind'] == 'BadInput'
    assert refused['msg'].startswith('job kind mean does not take --task-ms (its options: ')
    predict_planned = data['predict_planned']
    assert not predict_planned.get('failed'), predict_planned
    assert predict_planned['plan']['tasks'] == PREDICT_ROWS
