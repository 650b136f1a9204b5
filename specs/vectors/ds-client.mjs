// Live delivery-service client: drives an Ensign delivery service with the official dm3 client
// libraries (npm 1.7.1) and axios, the way dm3's messenger widget talks to a delivery service.
//
// Reads ONE JSON request on stdin, writes ONE JSON answer on stdout (a single line), exits:
//   0  the command succeeded                                   {"ok": true, ...}
//   1  the service answered, but not as a dm3 client expects   {"ok": false, "error": ..., ...}
//   2  bad request or an exception                             {"ok": false, "error": ...}
//
// Key pairs use dm3's field names {publicKey, privateKey} (base64). Commands:
//
//   signup      {dsUrl, ensName, signedUserProfile}
//               -> {status, body}            POST /profile/:ensName (the widget's sign-up)
//   login       {dsUrl, ensName, signingKeyPair}
//               -> {token}                   GET /auth/:ensName, crypto.sign over the challenge JWT,
//                                            POST /auth/:ensName {challenge, signature}
//   properties  {dsUrl} -> {properties}      dm3_getDeliveryServiceProperties, result JSON-parsed
//   send        {dsUrl, sender: {ensName, signingKeyPair}, receiver: {ensName, profile},
//                deliveryService: {profile}, text}
//               -> {status, data, envelopeId} messaging.createMessage + buildEnvelop, then
//                                            createJsonRpcCallSubmitMessage POSTed to <dsUrl>/rpc
//   receive     {dsUrl, ensName, token, encryptionKeyPair, sender: {ensName, publicSigningKey},
//                deliveryService: {publicSigningKey}, ack?: bool = true}
//               -> {messages: [{text, from, checks}], acked}
//                                            GET /delivery/messages/incoming/:ensName/ (trailing
//                                            slash, as the widget), messaging.decryptEnvelop,
//                                            checkMessageSignature, postmark hash + DS signature,
//                                            then POST .../syncAcknowledgements/

import { createRequire } from 'node:module';

import { crypto, ethers, messaging, postmarkSignaturePayload, shared } from './dm3.mjs';

const require = createRequire(import.meta.url);
const axios = require('axios');

class RequestError extends Error {}

function need(obj, dotted) {
    let value = obj;
    for (const part of dotted.split('.')) {
        if (value === null || typeof value !== 'object' || !(part in value)) {
            throw new RequestError(`request is missing "${dotted}"`);
        }
        value = value[part];
    }
    return value;
}

// Answer every HTTP status instead of throwing, so the caller sees what the service said.
const http = axios.create({ validateStatus: () => true, timeout: 15000 });

async function signup(req) {
    const url = `${need(req, 'dsUrl')}/profile/${need(req, 'ensName')}`;
    const res = await http.post(url, need(req, 'signedUserProfile'));
    return { ok: res.status === 200 && typeof res.data === 'string', status: res.status, body: res.data };
}

async function login(req) {
    const base = need(req, 'dsUrl');
    const name = need(req, 'ensName');
    const first = await http.get(`${base}/auth/${name}`);
    if (first.status !== 200 || typeof first.data !== 'string') {
        return { ok: false, error: 'no challenge', status: first.status, body: first.data };
    }
    const challenge = first.data;
    const signature = await crypto.sign(need(req, 'signingKeyPair.privateKey'), challenge);
    const second = await http.post(`${base}/auth/${name}`, { challenge, signature });
    if (second.status !== 200 || typeof second.data !== 'string') {
        return { ok: false, error: 'no token', status: second.status, body: second.data };
    }
    return { ok: true, token: second.data };
}

async function properties(req) {
    const res = await http.post(`${need(req, 'dsUrl')}/rpc`, {
        jsonrpc: '2.0',
        method: 'dm3_getDeliveryServiceProperties',
        params: [],
    });
    // The widget parses `result` as JSON.
    return { ok: res.status === 200, properties: JSON.parse(res.data.result) };
}

async function send(req) {
    const to = need(req, 'receiver.ensName');
    const from = need(req, 'sender.ensName');
    const message = await messaging.createMessage(to, from, need(req, 'text'), need(req, 'sender.signingKeyPair.privateKey'));
    const built = await messaging.buildEnvelop(message, crypto.encryptAsymmetric, {
        to: { ensName: to, profile: need(req, 'receiver.profile') },
        from: { ensName: from },
        deliverServiceProfile: need(req, 'deliveryService.profile'),
        keys: { signingKeyPair: need(req, 'sender.signingKeyPair') },
    });
    const call = messaging.createJsonRpcCallSubmitMessage(built.encryptedEnvelop, undefined);
    const res = await http.post(`${need(req, 'dsUrl')}/rpc`, call);
    const metadata = built.encryptedEnvelop.metadata;
    return {
        // axios resolves on 2xx in the widget; anything else is a failed delivery there.
        ok: res.status >= 200 && res.status < 300,
        status: res.status,
        data: res.data,
        envelopeId: metadata.encryptedMessageHash ?? metadata.messageHash,
    };
}

async function checked(fn) {
    try {
        return Boolean(await fn());
    } catch {
        return false;
    }
}

async function receive(req) {
    const base = need(req, 'dsUrl');
    const name = need(req, 'ensName');
    const headers = { Authorization: `Bearer ${need(req, 'token')}` };
    const res = await http.get(`${base}/delivery/messages/incoming/${name}/`, { headers });
    if (res.status !== 200 || !Array.isArray(res.data)) {
        return { ok: false, error: 'fetch failed', status: res.status, body: res.data };
    }
    const keyPair = need(req, 'encryptionKeyPair');
    const messages = [];
    const acknowledgements = [];
    for (const envelope of res.data) {
        const opened = await messaging.decryptEnvelop(envelope, keyPair);
        const message = opened.message;
        const postmark = opened.postmark;
        const checks = {
            messageSignature: await checked(() =>
                messaging.checkMessageSignature(message, need(req, 'sender.publicSigningKey'), need(req, 'sender.ensName')),
            ),
            postmarkHash: postmark.messageHash === ethers.utils.hashMessage(shared.stringify(envelope.message)),
            postmarkSignature: await checked(() =>
                crypto.checkSignature(
                    need(req, 'deliveryService.publicSigningKey'),
                    postmarkSignaturePayload(postmark.incommingTimestamp, postmark.messageHash),
                    postmark.signature,
                ),
            ),
        };
        messages.push({ text: message.message, from: message.metadata.from, to: message.metadata.to, checks });
        acknowledgements.push({
            contactAddress: envelope.metadata.deliveryInformation.from,
            messageHash: envelope.metadata.encryptedMessageHash ?? envelope.metadata.messageHash,
        });
    }
    let acked = null;
    if (req.ack !== false && acknowledgements.length > 0) {
        const ack = await http.post(`${base}/delivery/messages/${name}/syncAcknowledgements/`, { acknowledgements }, { headers });
        acked = { status: ack.status, body: ack.data };
    }
    const allChecks = messages.every((m) => Object.values(m.checks).every(Boolean));
    return { ok: allChecks && (acked === null || acked.status === 200), messages, acked };
}

const COMMANDS = { signup, login, properties, send, receive };

async function main() {
    let request;
    try {
        const chunks = [];
        for await (const chunk of process.stdin) chunks.push(chunk);
        request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (err) {
        process.stdout.write(JSON.stringify({ ok: false, error: `request is not JSON: ${err.message}` }) + '\n');
        process.exit(2);
    }
    const command = COMMANDS[request.command];
    if (command === undefined) {
        process.stdout.write(JSON.stringify({ ok: false, error: `unknown command ${JSON.stringify(request.command)}` }) + '\n');
        process.exit(2);
    }
    try {
        const answer = await command(request);
        process.stdout.write(JSON.stringify(answer) + '\n');
        process.exit(answer.ok ? 0 : 1);
    } catch (err) {
        process.stdout.write(JSON.stringify({ ok: false, error: String(err && err.stack ? err.stack : err) }) + '\n');
        process.exit(2);
    }
}

main();
