// Live interop driver: runs the official dm3 client libraries (npm 1.7.1) on request.
//
// Reads ONE JSON request on stdin, writes ONE JSON answer on stdout (a single line), exits:
//   0  the command succeeded (for open-*: every applicable check passed)    {"ok": true, ...}
//   1  an open-* command ran but a check failed                             {"ok": false, "error": ..., "checks": ...}
//   2  bad request or an exception (dm3 threw)                              {"ok": false, "error": ...}
//
// Key pairs use dm3's field names {publicKey, privateKey} (base64). Commands (see README.md):
//
//   build-envelope  {sender: {ensName, signingKeyPair}, receiver: {ensName, profile},
//                    deliveryService: {profile}, text, type?, referenceMessageHash?, attachments?}
//                   -> {envelope, envelopeWire, message, deliveryServiceUrl}
//                   The message comes from messaging.createMessage (or createReplyMessage /
//                   createEditMessage / createReactionMessage by type) and the envelope from
//                   messaging.buildEnvelop with crypto.encryptAsymmetric: exactly what dm3 sends.
//
//   add-postmark    {envelope, receiver: {profile}, deliveryService: {signingKeyPair, encryptionKeyPair}}
//                   -> {envelope (with postmark), postmarkWire, deliveryInformation}
//                   dm3-lib-delivery's Messages.handleIncomingMessage, i.e. what a dm3 DS stores.
//
//   open-envelope   {envelope, receiver: {encryptionKeyPair, ensName?}, sender: {publicSigningKey, ensName?},
//                    deliveryService?: {encryptionKeyPair?, publicSigningKey?}, requireSchema?: bool = true}
//                   -> {form, checks, message, deliveryInformation?, postmark?}
//                   Decrypts and verifies the way a dm3 receiver (and DS) would, with dm3's functions.
//
//   open-postmark   {envelope (with postmark), receiver: {encryptionKeyPair}, deliveryService: {publicSigningKey}}
//                   -> {checks, postmark}

import {
    crypto,
    deliveryMessages,
    ethers,
    messaging,
    metadataWithoutSignature,
    postmarkSignaturePayload,
    shared,
} from './dm3.mjs';

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

/** Runs a dm3 check; a throw (bad base64, wrong key, bad JSON) counts as a failed check. */
async function attempt(fn) {
    try {
        return { ok: Boolean(await fn()) };
    } catch (err) {
        return { ok: false, error: String(err && err.message ? err.message : err) };
    }
}

async function createMessageFor(req) {
    const to = need(req, 'receiver.ensName');
    const from = need(req, 'sender.ensName');
    const sk = need(req, 'sender.signingKeyPair.privateKey');
    const text = need(req, 'text');
    const type = req.type ?? 'NEW';
    switch (type) {
        case 'NEW':
            return messaging.createMessage(to, from, text, sk, req.attachments);
        case 'REPLY':
            return messaging.createReplyMessage(to, from, text, sk, need(req, 'referenceMessageHash'), req.attachments);
        case 'EDIT':
            return messaging.createEditMessage(to, from, text, sk, need(req, 'referenceMessageHash'), req.attachments);
        case 'REACTION':
            return messaging.createReactionMessage(to, from, text, sk, need(req, 'referenceMessageHash'));
        default:
            throw new RequestError(`unsupported message type ${JSON.stringify(type)}`);
    }
}

async function buildEnvelope(req) {
    const message = await createMessageFor(req);
    const built = await messaging.buildEnvelop(message, crypto.encryptAsymmetric, {
        to: { ensName: need(req, 'receiver.ensName'), profile: need(req, 'receiver.profile') },
        from: { ensName: need(req, 'sender.ensName') },
        deliverServiceProfile: need(req, 'deliveryService.profile'),
        keys: { signingKeyPair: need(req, 'sender.signingKeyPair') },
    });
    return {
        ok: true,
        envelope: built.encryptedEnvelop,
        // params[0] of dm3_submitMessage: plain JSON.stringify, as the widget sends it.
        envelopeWire: JSON.stringify(built.encryptedEnvelop),
        message,
        deliveryServiceUrl: built.deliveryServiceUrl,
    };
}

async function addPostmark(req) {
    const envelope = need(req, 'envelope');
    const handled = await deliveryMessages.handleIncomingMessage(
        envelope,
        {
            signingKeyPair: need(req, 'deliveryService.signingKeyPair'),
            encryptionKeyPair: need(req, 'deliveryService.encryptionKeyPair'),
        },
        need(req, 'receiver.profile'),
    );
    return {
        ok: true,
        envelope: handled.encryptedEnvelop,
        postmarkWire: handled.encryptedEnvelop.postmark,
        deliveryInformation: handled.decryptedDeliveryInformation,
    };
}

/** Decrypts the postmark as a dm3 receiver does and checks its hash and the DS signature. */
async function checkPostmark(envelope, receiverKeyPair, dsPublicSigningKey, checks) {
    let postmark;
    checks.postmarkDecrypt = await attempt(async () => {
        postmark = JSON.parse(await crypto.decryptAsymmetric(receiverKeyPair, JSON.parse(envelope.postmark)));
        return true;
    });
    if (!checks.postmarkDecrypt.ok) return undefined;
    checks.postmarkMessageHash = await attempt(
        () => postmark.messageHash === ethers.utils.hashMessage(shared.stringify(envelope.message)),
    );
    checks.postmarkSignature = await attempt(() =>
        crypto.checkSignature(
            dsPublicSigningKey,
            postmarkSignaturePayload(postmark.incommingTimestamp, postmark.messageHash),
            postmark.signature,
        ),
    );
    return postmark;
}

async function openEnvelope(req) {
    const envelope = need(req, 'envelope');
    const receiverKeyPair = need(req, 'receiver.encryptionKeyPair');
    const senderKey = need(req, 'sender.publicSigningKey');
    const ds = req.deliveryService ?? {};
    const metadata = need(req, 'envelope.metadata');
    const checks = {};
    const answer = { form: 'unknown', checks };

    // What a dm3 1.7.1 DS checks first: the generated JSON schema (it forbids messageHash).
    const schema = await attempt(() => shared.validateSchema(messaging.schema.EncryptionEnvelopeSchema, envelope));
    if (req.requireSchema === false) answer.schemaValid = schema.ok;
    else checks.schema = schema;

    let message;
    checks.messageDecrypt = await attempt(async () => {
        message = JSON.parse(await crypto.decryptAsymmetric(receiverKeyPair, JSON.parse(envelope.message)));
        return true;
    });
    if (message !== undefined) {
        answer.message = message;
        const expectedSender = req.sender.ensName ?? message?.metadata?.from;
        checks.messageSignature = await attempt(() =>
            messaging.checkMessageSignature(message, senderKey, expectedSender),
        );
        if (req.receiver.ensName !== undefined) {
            checks.messageRecipient = await attempt(() => message.metadata.to === req.receiver.ensName);
        }
    }

    // The metadata signature covers stringify(metadata without signature), whatever hash field it
    // carries: that is exactly the object buildEnvelop (npm) or the git source passes to sign().
    checks.metadataSignature = await attempt(() =>
        crypto.checkSignature(senderKey, shared.stringify(metadataWithoutSignature(metadata)), metadata.signature),
    );
    const hasNpm = 'encryptedMessageHash' in metadata;
    const hasSource = 'messageHash' in metadata;
    if (hasNpm && !hasSource) {
        answer.form = 'npm';
        checks.encryptedMessageHash = await attempt(
            () => metadata.encryptedMessageHash === shared.sha256(shared.stringify(envelope.message)),
        );
    } else if (hasSource && !hasNpm) {
        answer.form = 'source';
        checks.messageHash = await attempt(
            () => message !== undefined && metadata.messageHash === shared.sha256(shared.stringify(message)),
        );
    } else {
        checks.hashField = { ok: false, error: 'metadata must carry exactly one of encryptedMessageHash, messageHash' };
    }

    if (ds.encryptionKeyPair !== undefined && typeof metadata.deliveryInformation === 'string') {
        let info;
        checks.deliveryInformationDecrypt = await attempt(async () => {
            info = await deliveryMessages.decryptDeliveryInformation(envelope, ds.encryptionKeyPair);
            return true;
        });
        if (info !== undefined) {
            answer.deliveryInformation = info;
            checks.deliveryInformationMatchesMessage = await attempt(
                () => message !== undefined && info.to === message.metadata.to && info.from === message.metadata.from,
            );
        }
    }
    if (envelope.postmark !== undefined && ds.publicSigningKey !== undefined) {
        answer.postmark = await checkPostmark(envelope, receiverKeyPair, ds.publicSigningKey, checks);
    }
    return finish(answer);
}

async function openPostmark(req) {
    const envelope = need(req, 'envelope');
    need(req, 'envelope.postmark');
    const checks = {};
    const postmark = await checkPostmark(
        envelope,
        need(req, 'receiver.encryptionKeyPair'),
        need(req, 'deliveryService.publicSigningKey'),
        checks,
    );
    return finish({ checks, postmark });
}

function finish(answer) {
    const failed = Object.entries(answer.checks)
        .filter(([, result]) => !result.ok)
        .map(([name]) => name);
    if (failed.length > 0) return { ok: false, error: `checks failed: ${failed.join(', ')}`, ...answer };
    return { ok: true, ...answer };
}

const COMMANDS = {
    'build-envelope': buildEnvelope,
    'add-postmark': addPostmark,
    'open-envelope': openEnvelope,
    'open-postmark': openPostmark,
};

async function readStdin() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return Buffer.concat(chunks).toString('utf8');
}

async function main() {
    let answer;
    try {
        let req;
        try {
            req = JSON.parse(await readStdin());
        } catch (err) {
            throw new RequestError(`stdin is not one JSON document: ${err.message}`);
        }
        if (req === null || typeof req !== 'object') throw new RequestError('request must be a JSON object');
        const handler = COMMANDS[req.command];
        if (!handler) {
            throw new RequestError(
                `unknown command ${JSON.stringify(req.command)}; expected one of ${Object.keys(COMMANDS).join(', ')}`,
            );
        }
        answer = await handler(req);
        process.exitCode = answer.ok ? 0 : 1;
    } catch (err) {
        const message = err instanceof RequestError ? err.message : `dm3 threw: ${err && err.message ? err.message : err}`;
        answer = { ok: false, error: message };
        process.exitCode = 2;
    }
    process.stdout.write(JSON.stringify(answer) + '\n');
}

main();
