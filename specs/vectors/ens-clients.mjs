// Resolve Ensign names with the ENS clients dapps use: viem 2, ethers 6 and ethers 5 (the version
// dm3's libraries use), each with its defaults, against a running chain's JSON-RPC.
//
//   node ens-clients.mjs '<json>'
//
// <json>: {"rpc": url, "chainId": n, "registry": addr, "universalResolver": addr,
//          "names": [{"name": name, "key": textKey}, ...], "addresses": [...],
//          "refused": [...], "key": textKey for the refused names}
// Prints one JSON object: for each client, {version, names: {name: {text, address}},
// primary: {address: name}, refused: {name: {strict: error, lax: value}}}. A lookup that throws
// is recorded as {"error": message}, so the caller sees which client failed and why.

import { readFileSync } from 'node:fs'
import { createPublicClient, defineChain, http } from 'viem'
import { getEnsAddress, getEnsName, getEnsText, normalize } from 'viem/ens'
import { ethers as ethers6 } from 'ethers6'
import * as ethers5module from 'ethers'

const ethers5 = ethers5module.ethers ?? ethers5module.default.ethers
// viem exports no version constant; its package.json says which one npm installed.
const viemVersion = JSON.parse(readFileSync(new URL('./node_modules/viem/package.json', import.meta.url))).version
const input = JSON.parse(process.argv[2])

async function attempt(run) {
  try {
    return await run()
  } catch (error) {
    return { error: String(error?.shortMessage ?? error?.reason ?? error?.message ?? error).slice(0, 300) }
  }
}

// A revert's ENS error name (viem decodes the UR's errors), else the client's own error text.
function errorName(error) {
  const reverted = error?.walk?.((e) => e?.data?.errorName)
  if (reverted?.data?.errorName) return reverted.data.errorName
  return String(error?.code ?? error?.shortMessage ?? error?.message ?? error).slice(0, 200)
}

async function collect(client) {
  const out = { version: client.version, names: {}, primary: {}, refused: {} }
  for (const { name, key } of input.names) {
    out.names[name] = {
      text: await attempt(() => client.text(name, key)),
      address: await attempt(() => client.address(name)),
    }
  }
  for (const address of input.addresses) {
    out.primary[address] = await attempt(() => client.primary(address))
  }
  for (const name of input.refused) {
    let strict
    try {
      strict = { value: await client.text(name, input.key, true) }
    } catch (error) {
      strict = { error: errorName(error) }
    }
    out.refused[name] = { strict, lax: await attempt(() => client.text(name, input.key, false)) }
  }
  return out
}

function viemClient() {
  // The chain definition a dapp needs: the RPC and where the Universal Resolver is.
  const chain = defineChain({
    id: input.chainId,
    name: 'Ensign dev',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [input.rpc] } },
    contracts: { ensUniversalResolver: { address: input.universalResolver } },
  })
  const client = createPublicClient({ chain, transport: http() })
  return {
    version: `viem/${viemVersion}`,
    text: (name, key, strict) => getEnsText(client, { name: normalize(name), key, strict }),
    address: (name) => getEnsAddress(client, { name: normalize(name) }),
    primary: (address) => getEnsName(client, { address }),
  }
}

function ethers6Client(universalResolver) {
  const network = new ethers6.Network('ensign-dev', input.chainId)
  network.attachPlugin(new ethers6.EnsPlugin(input.registry, input.chainId, universalResolver))
  const provider = new ethers6.JsonRpcProvider(input.rpc, network, { staticNetwork: network })
  return {
    version: `ethers/${ethers6.version}${universalResolver ? '+universalResolver' : ''}`,
    // ethers has no strict switch: a refused answer always throws.
    text: async (name, key) => {
      const resolver = await provider.getResolver(name)
      return resolver === null ? null : await resolver.getText(key)
    },
    address: (name) => provider.resolveName(name),
    primary: (address) => provider.lookupAddress(address),
  }
}

function ethers5Client() {
  const provider = new ethers5.providers.StaticJsonRpcProvider(input.rpc, {
    chainId: input.chainId,
    name: 'ensign-dev',
    ensAddress: input.registry,
  })
  return {
    version: ethers5.version, // "ethers/5.x.y"
    // As dm3-lib-profile reads a profile: the resolver, then its text record.
    text: async (name, key) => {
      const resolver = await provider.getResolver(name)
      return resolver === null ? null : await resolver.getText(key)
    },
    address: (name) => provider.resolveName(name),
    primary: (address) => provider.lookupAddress(address),
  }
}

const results = {
  viem: await collect(viemClient()),
  ethers6: await collect(ethers6Client(undefined)),
  ethers6_universal: await collect(ethers6Client(input.universalResolver)),
  ethers5: await collect(ethers5Client()),
}
process.stdout.write(JSON.stringify(results))
